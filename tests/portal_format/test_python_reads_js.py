"""(b) What format.js writes (fresh randomness each run), opened by ehr_client's real functions.

Wraps, envelopes, whole packages and key shares made in Node are unwrapped, parsed and decrypted by
ehr_client.crypto, ehr_client.package, ehr_client.keyshare and the reader's key sources; a key share
must also be byte-for-byte what KeyShare.to_bytes writes for the same entries.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

import pytest
import umbral_pre

from ehr_client.client.keysource import ShareIndex
from ehr_client.custodian.seal import fragment_associated_data, open_sealed
from ehr_client.crypto import iter_decrypt, unwrap_data_key, x25519_public_key
from ehr_client.errors import DecryptionError, InvalidRecord
from ehr_client.keyshare import KeyShare
from ehr_client.package import PackageHeader, RecordBinding, UmbralSeal, parse_header
from tests.portal_format.node import generator, run_node

gen = generator()
SEED = 19  # fixed: the sizes and keys below are the same on every run; the JS randomness is not


def _binding_json(b: RecordBinding) -> dict[str, Any]:
    return dict(gen.binding_json(b))


def _bindings() -> list[RecordBinding]:
    return [gen.binding_of("js-1", 1, "patient", gen.LAB_SCOPE, "lab"),
            gen.binding_of("js-2", 9, "patient", gen.BIG_SCOPE, "patient"),
            gen.binding_of("js-3", 2**64 - 1, "patient", 0, "doctor")]


def test_python_unwraps_keys_wrapped_by_js() -> None:
    rng = random.Random(SEED)
    cases = [(b, rng.randbytes(32), name) for b in _bindings() for name in ("doctor", "patient")]
    results = run_node([{"op": "wrap", "data_key": k.hex(), "public": gen.pub(name).hex(),
                         "associated_data": b.associated_data.hex()} for b, k, name in cases])
    wrapped = [bytes.fromhex(r["wrapped"]) for r in results]
    for (b, key, name), w in zip(cases, wrapped, strict=True):
        assert len(w) == 93 and w[0] == 1
        assert unwrap_data_key(w, gen.X25519[name], associated_data=b.associated_data) == key
        with pytest.raises(DecryptionError):  # bound to the record: another binding's AD does not open it
            unwrap_data_key(w, gen.X25519[name], associated_data=_bindings()[0 if b != _bindings()[0] else 1]
                            .associated_data)
        with pytest.raises(DecryptionError):
            unwrap_data_key(w, gen.X25519["stranger"], associated_data=b.associated_data)
    # fresh ephemeral key and nonce per wrap: no two wraps share either
    assert len({w[1:33] for w in wrapped}) == len(wrapped) and len({w[33:45] for w in wrapped}) == len(wrapped)


def test_js_refuses_to_wrap_for_a_low_order_public_key() -> None:
    [result] = run_node([{"op": "wrap", "data_key": "11" * 32, "public": "00" * 32, "associated_data": ""}])
    assert result["ok"] is False and "not a usable" in result["message"]


def test_python_decrypts_envelopes_written_by_js() -> None:
    rng = random.Random(SEED)
    b = _bindings()[1]
    sizes = [(0, 64), (1, 64), (64, 64), (65, 64), (64 * 5, 64), (1000, 100), (5000, 1024 * 1024)]
    sizes += [(rng.randrange(0, 3000), rng.randrange(64, 700)) for _ in range(12)]
    plaintexts = [rng.randbytes(n) for n, _ in sizes]
    key = rng.randbytes(32)
    results = run_node([{"op": "encrypt_envelope", "plaintext": p.hex(), "data_key": key.hex(),
                         "associated_data": b.associated_data.hex(), "chunk_size": chunk}
                        for p, (_, chunk) in zip(plaintexts, sizes, strict=True)])
    for plaintext, (_, chunk), result in zip(plaintexts, sizes, results, strict=True):
        envelope = bytes.fromhex(result["envelope"])
        assert len(envelope) == 48 + len(plaintext) + 16 * (len(plaintext) // chunk + 1)
        opened = b"".join(iter_decrypt(envelope, key, record_id=b.record_id, version=b.version, context=b.context))
        assert opened == plaintext
        with pytest.raises(DecryptionError):
            b"".join(iter_decrypt(envelope, key, record_id=b.record_id, version=b.version + 1, context=b.context))


@pytest.mark.parametrize("with_umbral", [False, True])
def test_python_opens_a_package_written_by_js(with_umbral: bool) -> None:
    b = gen.binding_of("js-package", 3, "patient", gen.LAB_SCOPE, "lab")
    data_key = hashlib.sha256(b"js-package-key").digest()
    plaintext = json.dumps({"resourceType": "Observation", "status": "final", "code": {"text": "HbA1c"}}).encode()
    umbral = None
    if with_umbral:  # Umbral encryption is portal/src/umbral.js's part; here JS only carries the section
        seal = UmbralSeal.create(gen.umbral_public_key(gen.UMBRAL_SECRET), 4, b.record_id, b.version, data_key, b.context)
        umbral = {"key_version": 4, "capsule": seal.capsule.hex(), "ciphertext": seal.ciphertext.hex()}
    readers = [{"address": gen.ADDRESS["lab"], "key_version": 1, "public": gen.pub("lab").hex()},
               {"address": gen.ADDRESS["patient"], "key_version": 2, "public": gen.pub("patient-v2").hex()}]
    [result] = run_node([{"op": "build_package", "binding": _binding_json(b), "data_key": data_key.hex(),
                          "media_type": "application/fhir+json", "readers": readers, "umbral": umbral,
                          "plaintext": plaintext.hex(), "chunk_size": 64}])
    assert result["ok"], result
    package = bytes.fromhex(result["package"])
    header, offset = parse_header(package)
    assert header.binding == b and header.media_type == "application/fhir+json" and header.version == 3
    assert [(w.reader.hex(), w.key_version) for w in header.wraps] == [
        (gen.ADDRESS["lab"][2:].lower(), 1), (gen.ADDRESS["patient"][2:].lower(), 2)]
    assert len(PackageHeader(header.version, header.media_type, header.wraps, header.umbral, header.binding)
               .to_bytes()) == offset
    secrets = {1: gen.X25519["patient"], 2: gen.X25519["patient-v2"]}
    assert gen.python_open(package, "patient", secrets, b) == plaintext
    assert gen.python_open(package, "lab", {1: gen.X25519["lab"]}, b) == plaintext
    if with_umbral:
        assert header.umbral is not None and header.umbral.key_version == 4
        assert header.umbral.open_original(gen.UMBRAL_SECRET, b.record_id, b.version, b.context) == data_key


def test_python_reads_key_shares_made_by_js() -> None:
    rng = random.Random(SEED)
    bindings = _bindings()[:2] + [gen.binding_of("js-4", 2**53 - 1, "patient", gen.LAB_SCOPE, "lab")]
    keys = [rng.randbytes(32) for _ in bindings]
    [result] = run_node([{"op": "make_keyshare", "patient": gen.ADDRESS["patient"].lower(),
                          "grantee": gen.ADDRESS["doctor"].lower(), "public": gen.pub("doctor").hex(), "key_version": 3,
                          "entries": [{"binding": _binding_json(b), "data_key": k.hex()}
                                      for b, k in zip(bindings, keys, strict=True)]}])
    assert result["ok"], result
    data = result["share"].encode()
    share = KeyShare.from_bytes(data)
    assert share.to_bytes() == data  # the same canonical JSON Python writes (sorted keys, no spaces)
    assert share.patient == gen.ADDRESS["patient"] and share.grantee == gen.ADDRESS["doctor"]
    assert [(e.record_id, e.version, e.key_version) for e in share.entries] == [
        (b.record_id, b.version, 3) for b in bindings]
    doctor = gen.identity("doctor", {1: gen.X25519["doctor"]})  # the label says 3, the key is held as 1: still opens
    index = ShareIndex.of(share)
    for b, k in zip(bindings, keys, strict=True):
        assert index.data_key(doctor, _info(b), b) == k


def test_js_refuses_share_entries_python_would_refuse() -> None:
    b = _bindings()[0]
    version_zero = gen.binding_of("js-0", 0, "patient", gen.LAB_SCOPE, "lab")
    ops = [{"op": "make_keyshare", "patient": gen.ADDRESS["patient"], "grantee": gen.ADDRESS["doctor"],
            "public": gen.pub("doctor").hex(), "key_version": 1,
            "entries": [{"binding": _binding_json(version_zero), "data_key": "22" * 32}]},
           {"op": "make_keyshare", "patient": gen.ADDRESS["stranger"], "grantee": gen.ADDRESS["doctor"],
            "public": gen.pub("doctor").hex(), "key_version": 1,
            "entries": [{"binding": _binding_json(b), "data_key": "22" * 32}]},
           {"op": "make_keyshare", "patient": gen.ADDRESS["patient"], "grantee": gen.ADDRESS["doctor"],
            "public": gen.pub("doctor").hex(), "key_version": 0,
            "entries": [{"binding": _binding_json(b), "data_key": "22" * 32}]}]
    results = run_node(ops)
    assert [r["ok"] for r in results] == [False, False, False]
    assert "version" in results[0]["message"] and "patient" in results[1]["message"]
    assert "key version" in results[2]["message"]
    with pytest.raises(InvalidRecord):  # what the first share would have been: Python refuses version 0 too
        KeyShare.from_bytes(json.dumps({"format": "ehr-keyshare/1", "patient": gen.ADDRESS["patient"],
                                        "grantee": gen.ADDRESS["doctor"], "entries": [
                                            {"record": "0x" + "00" * 32, "version": 0, "keyVersion": 1,
                                             "wrapped": "0x" + "01" * 93}]}).encode())


def test_umbral_plaintext_prefix_matches_python() -> None:
    b = _bindings()[1]
    key = hashlib.sha256(b"umbral").digest()
    [result] = run_node([{"op": "umbral_prefix", "binding": _binding_json(b), "data_key": key.hex()}])
    seal = UmbralSeal.create(gen.umbral_public_key(gen.UMBRAL_SECRET), 1, b.record_id, b.version, key, b.context)
    # what Python puts under Umbral is exactly what JS makes (decrypt with the umbral_pre library to see it)
    plaintext = umbral_pre.decrypt_original(umbral_pre.SecretKey.from_be_bytes(gen.UMBRAL_SECRET),
                                            umbral_pre.Capsule.from_bytes(seal.capsule), seal.ciphertext)
    assert bytes(plaintext).hex() == result["plaintext"] and result["plaintext"].startswith(result["prefix"])


def _info(b: RecordBinding) -> Any:
    return gen.RecordInfo(b.record_id, "0x" + b.patient.hex(), "0x" + b.author.hex(), b.scope, "active", b"",
                          gen.Cid("js"), None, 0, 0, "0x")


def test_js_refuses_every_single_byte_change_of_a_python_package() -> None:
    """Flip each byte of a small package ehr_client made, opening it with and without the anchored hash.

    With the sha256 the chain anchored, every change is refused before anything is parsed. Without it,
    the only changes that still open are in the two fields no AEAD covers (the media type and a wrap's
    key-version label, see docs/FORMAT.md), and they still yield the true plaintext, never another one.
    """
    b = gen.binding_of("flip", 1, "patient", gen.LAB_SCOPE, "lab")
    plaintext = b"%PDF small"
    package = gen.seal_package(b, "application/pdf", plaintext, hashlib.sha256(b"flip").digest(),
                               {"patient": (1, gen.pub("patient"))}, umbral=False, chunk_size=64)
    expected = {k: v for k, v in _binding_json(b).items() if k != "version"}
    anchored = {**expected, "content_hash": hashlib.sha256(package).hexdigest()}

    def opens(flipped: bytes, exp: dict[str, Any]) -> dict[str, Any]:
        return {"op": "open_package", "package": flipped.hex(), "reader": gen.ADDRESS["patient"],
                "x25519_secrets": {"1": gen.X25519["patient"].hex()}, "expected": exp}

    flips = [gen.flip(package, i) for i in range(len(package))]
    results = run_node([opens(f, anchored) for f in flips] + [opens(f, expected) for f in flips])
    with_hash, without_hash = results[: len(flips)], results[len(flips) :]
    assert all(not r["ok"] and r["error"] == "IntegrityError" for r in with_hash)
    media = range(14, 14 + len("application/pdf"))
    label = range(14 + 15 + 80 + 1 + 20, 14 + 15 + 80 + 1 + 24)
    accepted = [i for i, r in enumerate(without_hash) if r["ok"]]
    assert accepted == [*media, *label]
    assert all(without_hash[i]["plaintext"] == plaintext.hex() for i in accepted)
    refused = {r["error"] for r in without_hash if not r["ok"]}
    assert refused == {"FormatError", "BindingError", "DecryptionError", "KeyNotFoundError"}, refused


def test_a_substituted_package_opens_unless_the_anchored_hash_is_checked() -> None:
    """Why openPackage requires the chain's sha256: a wrap authenticates no one. Whoever serves the
    bytes can wrap a key of their own to the reader with the public binding AD and encrypt what they like."""
    b = gen.binding_of("substitute", 1, "patient", gen.LAB_SCOPE, "lab")
    real = gen.seal_package(b, "application/fhir+json", b'{"value":5.4}', hashlib.sha256(b"real").digest(),
                            {"patient": (1, gen.pub("patient"))}, umbral=False)
    anchored = hashlib.sha256(real).hexdigest()
    [forged] = run_node([{"op": "build_package", "binding": _binding_json(b), "data_key": "33" * 32,
                          "media_type": "application/fhir+json", "umbral": None, "plaintext": b'{"value":9.9}'.hex(),
                          "readers": [{"address": gen.ADDRESS["patient"], "key_version": 1,
                                       "public": gen.pub("patient").hex()}], "chunk_size": 64}])
    substitute = bytes.fromhex(forged["package"])
    expected = {k: v for k, v in _binding_json(b).items() if k != "version"}

    def opening(package: bytes, exp: dict[str, Any]) -> dict[str, Any]:
        return {"op": "open_package", "package": package.hex(), "reader": gen.ADDRESS["patient"],
                "x25519_secrets": {"1": gen.X25519["patient"].hex()}, "expected": exp}

    unchecked, checked, genuine = run_node([opening(substitute, expected),
                                            opening(substitute, {**expected, "content_hash": anchored}),
                                            opening(real, {**expected, "content_hash": anchored})])
    assert bytes.fromhex(unchecked["plaintext"]) == b'{"value":9.9}'  # the crypto alone cannot tell
    assert gen.python_open(substitute, "patient", {1: gen.X25519["patient"]}, b) == b'{"value":9.9}'
    assert (checked["ok"], checked["error"]) == (False, "IntegrityError") and "plaintext" not in checked
    assert bytes.fromhex(genuine["plaintext"]) == b'{"value":5.4}'
    [refused] = run_node([{**opening(real, expected), "op": "open_package_requiring_hash"}])
    assert refused["ok"] is False and "contentHash" in refused["message"]


def test_custodians_open_payloads_sealed_by_js() -> None:
    """Key fragments for custodians, sealed in the browser, open with ehr_client.custodian.seal."""
    rng = random.Random(SEED)
    record_id = rng.randbytes(32)
    payloads = [b"", rng.randbytes(1), rng.randbytes(500)]
    results = run_node([{"op": "seal", "custodian": gen.ADDRESS["custodian"], "record_id": record_id.hex(),
                         "grantee": gen.ADDRESS["doctor"], "public": gen.pub("custodian").hex(), "payload": p.hex()}
                        for p in payloads])
    ad = fragment_associated_data(gen.ADDRESS["custodian"], record_id, gen.ADDRESS["doctor"])
    for payload, result in zip(payloads, results, strict=True):
        assert result["associated_data"] == ad.hex()
        sealed = bytes.fromhex(result["sealed"])
        assert len(sealed) == 121 + len(payload)
        assert open_sealed(sealed, gen.X25519["custodian"], associated_data=ad) == payload
        other = fragment_associated_data(gen.ADDRESS["custodian"], record_id, gen.ADDRESS["stranger"])
        with pytest.raises(DecryptionError):
            open_sealed(sealed, gen.X25519["custodian"], associated_data=other)


def test_js_shares_no_key_of_a_record_with_scope_bits_outside_the_grant() -> None:
    """As KeySharer.share (`info.scope & ~scopes`): a LAB grant shares LAB records, not a LAB|MENTAL one."""
    mental = 1 << 9
    lab_only = gen.binding_of("js-lab", 1, "patient", gen.LAB_SCOPE, "lab")
    lab_and_mental = gen.binding_of("js-lab-mental", 1, "patient", gen.LAB_SCOPE | mental, "lab")

    def share(*bindings: RecordBinding) -> dict[str, Any]:
        return {"op": "make_keyshare", "patient": gen.ADDRESS["patient"], "grantee": gen.ADDRESS["doctor"],
                "public": gen.pub("doctor").hex(), "key_version": 1, "granted_scopes": str(gen.LAB_SCOPE),
                "entries": [{"binding": _binding_json(b), "data_key": "44" * 32} for b in bindings]}

    allowed, refused = run_node([share(lab_only), share(lab_only, lab_and_mental)])
    assert allowed["ok"] and len(KeyShare.from_bytes(allowed["share"].encode()).entries) == 1
    assert refused["ok"] is False and "outside the granted" in refused["message"] and "share" not in refused
