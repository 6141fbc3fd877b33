"""Write the byte-format test vectors (tests/vectors/format/*.json) from ehr_client's own code.

    python scripts/make_format_vectors.py [--out tests/vectors/format]

Every key, record id and data key is fixed (derived from a label), so the inputs are the same on
every run; where ehr_client draws randomness itself (the ephemeral key and nonce of a wrap, the
nonce prefix of an envelope, Umbral's capsule) the vector records what the real function returned,
so the files differ between runs only in those bytes. Nothing here re-implements a format: packages
are assembled from `PackageHeader`, `UmbralSeal`, `wrap_data_key` and `iter_encrypt`, as
`ehr_client.client.write.RecordWriter.seal` does, and every case, good or bad, is opened by the
Python read path (`parse_header`, `check_header`, `own_data_key`, `iter_decrypt`, `KeyShare`,
`ShareIndex`) before it is written: a negative vector records the error Python actually raised, and
the script fails if Python accepts what the vector says must be refused.

Byte strings are lowercase hex without 0x (except inside key shares, which are JSON with 0x), uint64
values are decimal strings (JavaScript numbers cannot hold them), addresses are 0x-checksummed.
docs/FORMAT.md describes the formats and the vector files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import umbral_pre
from eth_account import Account
from eth_utils import to_checksum_address

from ehr_client.client.keysource import ShareIndex, check_header, own_data_key
from ehr_client.client.model import RecordInfo
from ehr_client.custodian.seal import fragment_associated_data, open_sealed, seal
from ehr_client.crypto import iter_decrypt, iter_encrypt, unwrap_data_key, wrap_data_key, x25519_public_key
from ehr_client.errors import DecryptionError, EHRError, IntegrityError, KeyNotFound
from ehr_client.keys.identity import Identity, umbral_public_key
from ehr_client.keyshare import KeyShare, ShareEntry
from ehr_client.package import PackageHeader, RecordBinding, UmbralSeal, Wrap, parse_header
from ehr_client.storage import Cid

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "tests" / "vectors" / "format"
FHIR = "application/fhir+json"
PDF = "application/pdf"
LAB_SCOPE = 1 << 1
BIG_SCOPE = (1 << 63) + 5  # a uint64 no JavaScript number holds exactly


def fixed(label: str) -> bytes:
    return hashlib.sha256(b"ehr-format-vectors/" + label.encode()).digest()


WALLETS = {name: fixed("wallet/" + name) for name in ("patient", "lab", "doctor", "stranger", "custodian")}
ADDRESS = {name: str(Account.from_key(key).address) for name, key in WALLETS.items()}
X25519 = {name: fixed("x25519/" + name) for name in ("patient", "patient-v2", "lab", "doctor", "stranger", "custodian")}
UMBRAL_SECRET = bytes(umbral_pre.SecretKey.from_be_bytes(fixed("umbral/patient")).to_be_bytes())


def pub(name: str) -> bytes:
    return x25519_public_key(X25519[name])


def identity(name: str, secrets: dict[int, bytes]) -> Identity:
    return Identity.from_private_keys(WALLETS[name], secrets)


def binding_json(b: RecordBinding) -> dict[str, Any]:
    return {"record_id": b.record_id.hex(), "version": str(b.version), "patient": to_checksum_address(b.patient),
            "scope": str(b.scope), "author": to_checksum_address(b.author)}


def binding_of(label: str, version: int, patient: str, scope: int, author: str) -> RecordBinding:
    return RecordBinding.of(fixed("record/" + label), version, ADDRESS[patient], scope, ADDRESS[author])


def expect_error(fn: Callable[[], object], *kinds: type[Exception]) -> str:
    """Run Python's own path on a bad input; return the name of the error it raised (one of `kinds`)."""
    try:
        fn()
    except kinds as exc:
        return type(exc).__name__
    raise SystemExit(f"ehr_client accepted input a negative vector says it refuses ({fn})")


def flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


def error(js: str, python: str) -> dict[str, str]:
    return {"js": js, "python": python}


# --- key wrap --------------------------------------------------------------------------------


def wrap_vectors() -> dict[str, Any]:
    bindings = [binding_of("wrap-1", 1, "patient", LAB_SCOPE, "lab"),
                binding_of("wrap-2", 7, "patient", BIG_SCOPE, "patient")]
    cases: list[dict[str, Any]] = []
    negative: list[dict[str, Any]] = []
    for i, b in enumerate(bindings):
        data_key = fixed(f"data-key/wrap-{i}")
        wrapped = wrap_data_key(data_key, pub("doctor"), associated_data=b.associated_data)
        assert unwrap_data_key(wrapped, X25519["doctor"], associated_data=b.associated_data) == data_key
        cases.append({"name": f"wrap for the doctor, binding {i + 1}", "recipient_secret": X25519["doctor"].hex(),
                      "recipient_public": pub("doctor").hex(), "binding": binding_json(b),
                      "associated_data": b.associated_data.hex(), "wrapped": bytes(wrapped).hex(),
                      "data_key": data_key.hex()})
    b = bindings[0]
    ad = b.associated_data
    first = bytes.fromhex(str(cases[0]["wrapped"]))
    other = binding_of("wrap-1", 1, "stranger", LAB_SCOPE, "lab")
    bad: list[tuple[str, bytes, bytes, bytes]] = [
        ("format version byte changed", flip(first, 0), X25519["doctor"], ad),
        ("ephemeral public key byte flipped", flip(first, 5), X25519["doctor"], ad),
        ("nonce byte flipped", flip(first, 40), X25519["doctor"], ad),
        ("encrypted key byte flipped", flip(first, 50), X25519["doctor"], ad),
        ("tag byte flipped", flip(first, 92), X25519["doctor"], ad),
        ("truncated to 92 bytes", first[:-1], X25519["doctor"], ad),
        ("extended to 94 bytes", first + b"\x00", X25519["doctor"], ad),
        ("wrong reader key", first, X25519["stranger"], ad),
        ("associated data of another patient (re-listed)", first, X25519["doctor"], other.associated_data),
        ("associated data of another version", first, X25519["doctor"],
         binding_of("wrap-1", 2, "patient", LAB_SCOPE, "lab").associated_data),
    ]
    for name, w, secret, aad in bad:
        python = expect_error(partial(unwrap_data_key, w, secret, associated_data=aad), DecryptionError)
        negative.append({"name": name, "wrapped": w.hex(), "recipient_secret": secret.hex(),
                         "associated_data": aad.hex(), "error": error("DecryptionError", python)})
    return {"description": "Data keys wrapped to an X25519 key (ehr_client.crypto.wrap), see docs/FORMAT.md#key-wrap",
            "cases": cases, "negative": negative}


# --- envelope ----------------------------------------------------------------------------------


def envelope_vectors() -> dict[str, Any]:
    b = binding_of("envelope", 3, "patient", LAB_SCOPE, "lab")
    data_key = fixed("data-key/envelope")
    cases: list[dict[str, Any]] = []
    for size, chunk in [(0, 64), (1, 64), (63, 64), (64, 64), (65, 64), (128, 64), (200, 64), (1000, 1024 * 1024)]:
        plaintext = hashlib.shake_256(f"plaintext-{size}".encode()).digest(size) if size else b""
        envelope = b"".join(iter_encrypt(plaintext, data_key, record_id=b.record_id, version=b.version,
                                         chunk_size=chunk, context=b.context))
        opened = b"".join(iter_decrypt(envelope, data_key, record_id=b.record_id, version=b.version, context=b.context))
        assert opened == plaintext
        cases.append({"name": f"{size} bytes in chunks of {chunk}", "data_key": data_key.hex(), "binding": binding_json(b),
                      "associated_data": b.associated_data.hex(), "chunk_size": chunk, "plaintext": plaintext.hex(),
                      "envelope": envelope.hex()})
    env = bytes.fromhex(str(cases[6]["envelope"]))  # 200 bytes in chunks of 64: 3 full chunks and a final of 8 (+ tag)
    frame = 64 + 16
    h = 48
    header = bytearray(env[:h])
    bad_size = bytearray(header)
    bad_size[5:9] = (128).to_bytes(4, "big")
    small_size = bytearray(header)
    small_size[5:9] = (63).to_bytes(4, "big")
    swapped = env[:h] + env[h + frame : h + 2 * frame] + env[h : h + frame] + env[h + 2 * frame :]
    other_key = fixed("data-key/other")
    wrong_version_ad = binding_of("envelope", 4, "patient", LAB_SCOPE, "lab")
    bad: list[tuple[str, bytes, bytes, RecordBinding, str]] = [
        ("ciphertext byte flipped in chunk 0", flip(env, h + 3), data_key, b, "DecryptionError"),
        ("tag byte flipped in the final chunk", flip(env, len(env) - 1), data_key, b, "DecryptionError"),
        ("key commitment byte flipped", flip(env, 20), data_key, b, "DecryptionError"),
        ("nonce prefix byte flipped", flip(env, 10), data_key, b, "DecryptionError"),
        ("chunk size changed to another valid size", bytes(bad_size) + env[h:], data_key, b, "DecryptionError"),
        ("chunks 0 and 1 swapped", swapped, data_key, b, "DecryptionError"),
        ("final chunk dropped (cut at a chunk boundary)", env[: h + 3 * frame], data_key, b, "DecryptionError"),
        ("cut inside the final chunk's tag", env[:-1], data_key, b, "DecryptionError"),
        ("extended by 16 bytes", env + bytes(16), data_key, b, "DecryptionError"),
        ("wrong data key", env, other_key, b, "DecryptionError"),
        ("associated data of another version", env, data_key, wrong_version_ad, "DecryptionError"),
        ("magic changed", b"EHRX" + env[4:], data_key, b, "FormatError"),
        ("envelope format version 2", env[:4] + b"\x02" + env[5:], data_key, b, "FormatError"),
        ("chunk size 63, below the minimum", bytes(small_size) + env[h:], data_key, b, "FormatError"),
        ("shorter than the 48-byte header", env[:47], data_key, b, "FormatError"),
    ]
    negative = []
    for name, e, key, binding, js in bad:
        python = expect_error(partial(_decrypt_all, e, key, binding), DecryptionError)
        negative.append({"name": name, "envelope": e.hex(), "data_key": key.hex(),
                         "associated_data": binding.associated_data.hex(), "error": error(js, python)})
    return {"description": "Envelopes (ehr_client.crypto.stream), see docs/FORMAT.md#envelope", "cases": cases,
            "negative": negative}


def _decrypt_all(envelope: bytes, key: bytes, binding: RecordBinding) -> bytes:
    return b"".join(iter_decrypt(envelope, key, record_id=binding.record_id, version=binding.version,
                                 context=binding.context))


# --- package -----------------------------------------------------------------------------------


def seal_package(binding: RecordBinding, media_type: str, plaintext: bytes, data_key: bytes,
                 readers: dict[str, tuple[int, bytes]], *, umbral: bool, bound: bool = True,
                 chunk_size: int = 1024 * 1024) -> bytes:
    """A package the way RecordWriter.seal builds one, from ehr_client's own parts."""
    aad = binding.associated_data
    by_address = {bytes.fromhex(ADDRESS[name][2:]): value for name, value in readers.items()}
    wraps = tuple(Wrap(reader, version, wrap_data_key(data_key, public, associated_data=aad))
                  for reader, (version, public) in sorted(by_address.items()))
    seal = None
    if umbral:
        seal = UmbralSeal.create(umbral_public_key(UMBRAL_SECRET), 1, binding.record_id, binding.version, data_key,
                                 binding.context)
    header = PackageHeader(binding.version, media_type, wraps, seal, binding if bound else None).to_bytes()
    envelope = b"".join(iter_encrypt(plaintext, data_key, record_id=binding.record_id, version=binding.version,
                                     chunk_size=chunk_size, context=binding.context))
    return header + envelope


def python_open(package: bytes, reader: str, secrets: dict[int, bytes], expected: RecordBinding,
                content_hash: bytes | None = None) -> bytes:
    """ehr_client's read path on a package: RecordReader.fetch_verified's hash comparison (when the
    anchored `content_hash` is given), then RecordReader._open without the chain and the store."""
    if content_hash is not None and hashlib.sha256(package).digest() != content_hash:
        raise IntegrityError("the stored data does not match the hash anchored on chain")
    header, offset = parse_header(package)
    info = RecordInfo(expected.record_id, "0x" + expected.patient.hex(), "0x" + expected.author.hex(), expected.scope,
                      "active", content_hash or hashlib.sha256(package).digest(), Cid("vector"), None, 0, 0, "0x")
    binding = check_header(info, header)
    data_key = own_data_key(identity(reader, secrets), header, binding)
    if data_key is None:
        raise KeyNotFound("no wrap for this reader")
    return b"".join(iter_decrypt(memoryview(package)[offset:], data_key, record_id=info.record_id,
                                 version=header.version, context=binding.context))


def package_case(name: str, package: bytes, reader: str, secrets: dict[int, bytes], expected: RecordBinding,
                 content_hash: bytes | None = None, **extra: Any) -> dict[str, Any]:
    exp = binding_json(expected)
    del exp["version"]  # the chain gives id, patient, scope and author; the version is the header's
    if content_hash is not None:
        exp["content_hash"] = content_hash.hex()
    return {"name": name, "package": package.hex(), "reader": ADDRESS[reader],
            "x25519_secrets": {str(v): s.hex() for v, s in secrets.items()}, "expected": exp, **extra}


def package_vectors() -> dict[str, Any]:
    fhir = json.dumps({"resourceType": "Observation", "status": "final", "code": {"text": "Glucose"},
                       "valueQuantity": {"value": 5.4, "unit": "mmol/L"}}, separators=(",", ":"), sort_keys=True).encode()
    pdf = b"%PDF-1.4\n" + hashlib.shake_256(b"pdf").digest(291)
    cases = []
    b4 = binding_of("package-lab", 1, "patient", LAB_SCOPE, "lab")
    k4 = fixed("data-key/package-lab")
    p4 = seal_package(b4, FHIR, fhir, k4, {"lab": (1, pub("lab")), "patient": (2, pub("patient-v2"))}, umbral=True)
    patient_keys = {1: X25519["patient"], 2: X25519["patient-v2"]}
    assert python_open(p4, "patient", patient_keys, b4) == fhir
    assert python_open(p4, "lab", {1: X25519["lab"]}, b4) == fhir
    header, _ = parse_header(p4)
    assert header.umbral is not None
    assert header.umbral.open_original(UMBRAL_SECRET, b4.record_id, b4.version, b4.context) == k4
    umbral = {"secret": UMBRAL_SECRET.hex(), "public": umbral_public_key(UMBRAL_SECRET).hex(),
              "plaintext_prefix_length": len(b"ehr-umbral-data-key/v1") + 32 + 8 + len(b4.context)}
    for reader, secrets in [("patient", patient_keys), ("lab", {1: X25519["lab"]})]:
        cases.append(package_case(f"format 4 (binding, Umbral): lab writes for patient, {reader} opens", p4, reader,
                                  secrets, b4, format=4, media_type=FHIR, version="1", plaintext=fhir.hex(),
                                  data_key=k4.hex(), umbral=umbral))
    anchored = hashlib.sha256(p4).digest()
    assert python_open(p4, "patient", patient_keys, b4, anchored) == fhir
    cases.append(package_case("format 4 with the anchored sha256 checked first", p4, "patient", patient_keys, b4,
                              anchored, format=4, media_type=FHIR, version="1", plaintext=fhir.hex(), data_key=k4.hex(),
                              umbral=umbral))
    b3 = binding_of("package-self", 5, "patient", BIG_SCOPE, "patient")
    k3 = fixed("data-key/package-self")
    p3 = seal_package(b3, PDF, pdf, k3, {"patient": (3, pub("patient"))}, umbral=False, chunk_size=64)
    # the wrap says key version 3, the reader holds the key as version 1: the label is a hint, every key is tried
    assert python_open(p3, "patient", {1: X25519["patient"], 2: X25519["patient-v2"]}, b3) == pdf
    cases.append(package_case("format 3 (binding, no Umbral): patient's own PDF in 64-byte chunks, key label is stale",
                              p3, "patient", {1: X25519["patient"], 2: X25519["patient-v2"]}, b3, format=3,
                              media_type=PDF, version="5", plaintext=pdf.hex(), data_key=k3.hex()))

    negative = []

    def refuse(name: str, package: bytes, reader: str, secrets: dict[int, bytes], expected: RecordBinding,
               js: str, *kinds: type[Exception], content_hash: bytes | None = None) -> None:
        python = expect_error(lambda: python_open(package, reader, secrets, expected, content_hash), *kinds)
        negative.append(package_case(name, package, reader, secrets, expected, content_hash, error=error(js, python)))

    lab_keys = {1: X25519["lab"]}
    legacy = [("format 1 (no binding) is parsed and refused", seal_package(b4, FHIR, fhir, k4, {"lab": (1, pub("lab"))},
                                                                           umbral=False, bound=False)),
              ("format 2 (no binding, Umbral) is parsed and refused", seal_package(
                  b4, FHIR, fhir, k4, {"lab": (1, pub("lab"))}, umbral=True, bound=False))]
    for name, package in legacy:
        refuse(name, package, "lab", lab_keys, b4, "BindingError", EHRError)
    envelope_at = len(PackageHeader(*_header_fields(p4)).to_bytes())
    wrap_at = 14 + len(FHIR) + 80 + 1
    header4, _ = parse_header(p4)
    patient_first = header4.wraps[0].reader == bytes.fromhex(ADDRESS["patient"][2:])
    patient_wrap = wrap_at + (0 if patient_first else 117) + 24
    relisted_patient = binding_of("package-lab", 1, "stranger", LAB_SCOPE, "lab")
    rewritten = p4[: 14 + len(FHIR) + 32] + relisted_patient.patient + p4[14 + len(FHIR) + 52 :]
    refuse("envelope byte flipped", flip(p4, envelope_at + 60), "patient", patient_keys, b4, "DecryptionError",
           DecryptionError)
    refuse("patient's wrapped key byte flipped", flip(p4, patient_wrap + 60), "patient", patient_keys, b4,
           "DecryptionError", DecryptionError)
    refuse("envelope truncated by 16 bytes", p4[:-16], "patient", patient_keys, b4, "DecryptionError", DecryptionError)
    refuse("the chain lists another patient (wrong binding)", p4, "patient", patient_keys, relisted_patient,
           "BindingError", EHRError)
    refuse("the chain lists another scope (wrong binding)", p4, "patient", patient_keys,
           binding_of("package-lab", 1, "patient", LAB_SCOPE << 1, "lab"), "BindingError", EHRError)
    refuse("the chain lists another author (wrong binding)", p4, "patient", patient_keys,
           binding_of("package-lab", 1, "patient", LAB_SCOPE, "patient"), "BindingError", EHRError)
    refuse("the chain lists another record id (wrong binding)", p4, "patient", patient_keys,
           binding_of("package-other", 1, "patient", LAB_SCOPE, "lab"), "BindingError", EHRError)
    refuse("header rewritten to match a re-listing under another patient", rewritten, "patient", patient_keys,
           relisted_patient, "DecryptionError", DecryptionError)
    refuse("wrong reader key", p4, "patient", {2: X25519["stranger"]}, b4, "DecryptionError", DecryptionError)
    refuse("reader not in the keyring", p4, "doctor", {1: X25519["doctor"]}, b4, "KeyNotFoundError", KeyNotFound)
    # the media type and the wraps' key-version labels are under no AEAD: the anchored sha256 covers them
    media_changed = p4[:14] + b"t" + p4[15:]
    label_changed = p4[: wrap_at + 20] + (99).to_bytes(4, "big") + p4[wrap_at + 24 :]
    for name, package in [("media type changed, caught by the anchored sha256", media_changed),
                          ("a wrap's key-version label changed, caught by the anchored sha256", label_changed)]:
        refuse(name, package, "patient", patient_keys, b4, "IntegrityError", IntegrityError, content_hash=anchored)
    # anyone can wrap a key of their own to the patient with the public binding AD: only the hash tells
    substitute = seal_package(b4, FHIR, fhir.replace(b"5.4", b"9.9"), fixed("data-key/substitute"),
                              {"lab": (1, pub("lab")), "patient": (2, pub("patient-v2"))}, umbral=False)
    assert python_open(substitute, "patient", patient_keys, b4) != fhir
    refuse("substituted package with the right binding, caught by the anchored sha256", substitute, "patient",
           patient_keys, b4, "IntegrityError", IntegrityError, content_hash=anchored)
    malformed = [
        ("magic changed", b"EHRQ" + p4[4:]),
        ("unknown package format 5", p4[:4] + b"\x05" + p4[5:]),
        ("package format 0", p4[:4] + b"\x00" + p4[5:]),
        ("cut inside the fixed header", p4[:10]),
        ("cut inside the media type", p4[:20]),
        ("cut inside the binding", p4[: 14 + len(FHIR) + 40]),
        ("cut inside the keyring", p4[: wrap_at + 50]),
        ("cut inside the Umbral section", p4[: wrap_at + 2 * 117 + 10]),
        ("media type not ASCII", p4[:14] + b"\xff" + p4[15:]),
        ("Umbral capsule length over 1024", p4[: wrap_at + 2 * 117 + 4] + (1025).to_bytes(2, "big")
         + p4[wrap_at + 2 * 117 + 6 :]),
    ]
    for name, package in malformed:
        refuse(name, package, "patient", patient_keys, b4, "FormatError", DecryptionError)
    return {"description": "Packages: keyring header and envelope (ehr_client.package), see docs/FORMAT.md#package",
            "cases": cases, "negative": negative}


def _header_fields(package: bytes) -> tuple[Any, ...]:
    header, _ = parse_header(package)
    return header.version, header.media_type, header.wraps, header.umbral, header.binding


# --- key share -----------------------------------------------------------------------------------


def keyshare_vectors() -> dict[str, Any]:
    bindings = [binding_of("share-1", 1, "patient", LAB_SCOPE, "lab"), binding_of("share-2", 2, "patient", BIG_SCOPE,
                                                                                  "patient")]
    keys = [fixed("data-key/share-1"), fixed("data-key/share-2")]
    entries = tuple(ShareEntry(b.record_id, b.version, 1, bytes(wrap_data_key(k, pub("doctor"),
                                                                             associated_data=b.associated_data)))
                    for b, k in zip(bindings, keys, strict=True))
    share = KeyShare(ADDRESS["patient"], ADDRESS["doctor"], entries).to_bytes()
    doctor = identity("doctor", {1: X25519["doctor"]})

    def info(b: RecordBinding) -> RecordInfo:
        return RecordInfo(b.record_id, "0x" + b.patient.hex(), "0x" + b.author.hex(), b.scope, "active", b"",
                          Cid("vector"), None, 0, 0, "0x")

    def share_key(data: bytes, who: Identity, b: RecordBinding) -> bytes:
        return ShareIndex.of(KeyShare.from_bytes(data)).data_key(who, info(b), b)

    for b, k in zip(bindings, keys, strict=True):
        assert share_key(share, doctor, b) == k
    lower = share.replace(ADDRESS["patient"].encode(), ADDRESS["patient"].lower().encode())
    assert KeyShare.from_bytes(lower).patient == ADDRESS["patient"]
    parsed_entries = [{"record_id": e.record_id.hex(), "version": str(e.version), "key_version": e.key_version,
                       "wrapped": e.wrapped.hex()} for e in entries]
    common = {"grantee_secret": X25519["doctor"].hex(), "grantee_public": pub("doctor").hex(),
              "reader": ADDRESS["doctor"], "x25519_secrets": {"1": X25519["doctor"].hex()},
              "bindings": [binding_json(b) for b in bindings],
              "data_keys": [k.hex() for k in keys],
              "parsed": {"patient": ADDRESS["patient"], "grantee": ADDRESS["doctor"], "entries": parsed_entries}}
    cases = [{"name": "two records shared with the doctor", "share": share.decode(), **common},
             {"name": "patient address in lower case (accepted, normalised)", "share": lower.decode(), **common}]

    doc = json.loads(share)

    def variant(**change: Any) -> bytes:
        return json.dumps({**doc, **change}, separators=(",", ":"), sort_keys=True).encode()

    def entry_variant(**change: Any) -> bytes:
        return variant(entries=[{**doc["entries"][0], **change}])

    malformed: list[tuple[str, bytes]] = [
        ("another format string", variant(format="ehr-keyshare/2")),
        ("patient is not an address", variant(patient="0x1234")),
        ("grantee missing", json.dumps({k: v for k, v in doc.items() if k != "grantee"}).encode()),
        ("entries is not a list", variant(entries={"0": doc["entries"][0]})),
        ("record id of 31 bytes", entry_variant(record=doc["entries"][0]["record"][:-2])),
        ("record id not hex", entry_variant(record="0x" + "zz" * 32)),
        ("record id with an upper-case 0X prefix", entry_variant(record="0X" + doc["entries"][0]["record"][2:])),
        ("wrapped key of 92 bytes", entry_variant(wrapped=doc["entries"][0]["wrapped"][:-2])),
        ("version 0", entry_variant(version=0)),
        ("key version 0", entry_variant(keyVersion=0)),
        ("entry without a version", json.dumps({**doc, "entries": [{k: v for k, v in doc["entries"][0].items()
                                                                    if k != "version"}]}).encode()),
        ("not JSON", b"{not json"),
        ("not UTF-8", b"\xff\xfe{}"),
        ("a JSON array, not an object", b"[]"),
        ("nested five levels deep", variant(entries=[{**doc["entries"][0], "x": [[1]]}])),
    ]
    negative = []
    for name, data in malformed:
        python = expect_error(partial(KeyShare.from_bytes, data), EHRError)
        negative.append({"name": name, "share": data.decode("utf-8", "replace") if name != "not UTF-8" else None,
                         "share_hex": data.hex(), "error": error("FormatError", python)})
    stranger = identity("stranger", {1: X25519["doctor"]})
    refused = [
        ("opened by someone other than the grantee", share, "stranger", {1: X25519["doctor"]}, bindings[0],
         "KeyNotFoundError", lambda: share_key(share, stranger, bindings[0])),
        ("the chain lists another version of the record", share, "doctor", {1: X25519["doctor"]},
         binding_of("share-1", 2, "patient", LAB_SCOPE, "lab"), "KeyNotFoundError",
         lambda: share_key(share, doctor, binding_of("share-1", 2, "patient", LAB_SCOPE, "lab"))),
        ("record not in the share", share, "doctor", {1: X25519["doctor"]},
         binding_of("share-3", 1, "patient", LAB_SCOPE, "lab"), "KeyNotFoundError",
         lambda: share_key(share, doctor, binding_of("share-3", 1, "patient", LAB_SCOPE, "lab"))),
        ("the chain lists another scope (associated data differs)", share, "doctor", {1: X25519["doctor"]},
         binding_of("share-1", 1, "patient", LAB_SCOPE << 1, "lab"), "DecryptionError",
         lambda: share_key(share, doctor, binding_of("share-1", 1, "patient", LAB_SCOPE << 1, "lab"))),
        ("wrong grantee key", share, "doctor", {1: X25519["stranger"]}, bindings[0], "DecryptionError",
         lambda: share_key(share, identity("doctor", {1: X25519["stranger"]}), bindings[0])),
    ]
    for name, data, reader, secrets, b, js, python_call in refused:
        python = expect_error(python_call, EHRError)
        negative.append({"name": name, "share": data.decode(), "share_hex": data.hex(), "reader": ADDRESS[reader],
                         "x25519_secrets": {str(v): s.hex() for v, s in secrets.items()},
                         "binding": binding_json(b),
                         "error": error(js, python)})
    return {"description": "Key shares (ehr_client.keyshare), see docs/FORMAT.md#key-share", "cases": cases,
            "negative": negative}


# --- sealed payloads (custodian fragments) ------------------------------------------------------


def seal_vectors() -> dict[str, Any]:
    record_id = fixed("record/seal")
    ad = fragment_associated_data(ADDRESS["custodian"], record_id, ADDRESS["doctor"])
    cases: list[dict[str, Any]] = []
    for size in (0, 1, 300):
        payload = hashlib.shake_256(f"kfrag-{size}".encode()).digest(size) if size else b""
        sealed = seal(payload, pub("custodian"), associated_data=ad)
        assert open_sealed(sealed, X25519["custodian"], associated_data=ad) == payload
        cases.append({"name": f"{size}-byte payload sealed to a custodian", "custodian": ADDRESS["custodian"],
                      "record_id": record_id.hex(), "grantee": ADDRESS["doctor"], "associated_data": ad.hex(),
                      "recipient_secret": X25519["custodian"].hex(), "sealed": sealed.hex(), "payload": payload.hex()})
    sealed = bytes.fromhex(str(cases[2]["sealed"]))
    other_grantee = fragment_associated_data(ADDRESS["custodian"], record_id, ADDRESS["stranger"])
    bad = [("payload byte flipped", flip(sealed, 110), X25519["custodian"], ad),
           ("wrapped key byte flipped", flip(sealed, 50), X25519["custodian"], ad),
           ("nonce byte flipped", flip(sealed, 95), X25519["custodian"], ad),
           ("shorter than 121 bytes", sealed[:120], X25519["custodian"], ad),
           ("wrong custodian key", sealed, X25519["stranger"], ad),
           ("bound to another grantee", sealed, X25519["custodian"], other_grantee)]
    negative = []
    for name, data, secret, aad in bad:
        python = expect_error(partial(open_sealed, data, secret, associated_data=aad), DecryptionError)
        negative.append({"name": name, "sealed": data.hex(), "recipient_secret": secret.hex(),
                         "associated_data": aad.hex(), "error": error("DecryptionError", python)})
    return {"description": "Payloads sealed to a custodian (ehr_client.custodian.seal), see docs/FORMAT.md#sealed-payload",
            "cases": cases, "negative": negative}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, make in [("wrap", wrap_vectors), ("envelope", envelope_vectors), ("package", package_vectors),
                       ("keyshare", keyshare_vectors), ("seal", seal_vectors)]:
        vectors = {"generator": "scripts/make_format_vectors.py", **make()}
        path = args.out / f"{name}.json"
        path.write_text(json.dumps(vectors, indent=1) + "\n")
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {len(vectors['cases'])} cases, "
              f"{len(vectors['negative'])} negative")


if __name__ == "__main__":
    main()
