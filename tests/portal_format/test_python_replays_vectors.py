"""The committed vectors still describe ehr_client: its current code opens every good vector and
raises the recorded error on every negative one. If this fails, ehr_client's format changed: update
docs/FORMAT.md and portal/src/format.js, then run scripts/make_format_vectors.py."""

from __future__ import annotations

from typing import Any

import pytest

from ehr_client.client.keysource import ShareIndex
from ehr_client.custodian.seal import fragment_associated_data, open_sealed
from ehr_client.crypto import iter_decrypt, unwrap_data_key
from ehr_client.keyshare import KeyShare
from ehr_client.package import RecordBinding
from tests.portal_format.node import FILES, generator, load_vectors

gen = generator()
NAME_OF = {address: name for name, address in gen.ADDRESS.items()}


def _binding(b: dict[str, Any]) -> RecordBinding:
    return RecordBinding.of(bytes.fromhex(b["record_id"]), int(b.get("version", 0)), b["patient"], int(b["scope"]),
                            b["author"])


def _secrets(raw: dict[str, str]) -> dict[int, bytes]:
    return {int(v): bytes.fromhex(s) for v, s in raw.items()}


def _envelope(case: dict[str, Any]) -> bytes:
    ad = bytes.fromhex(case["associated_data"])
    return b"".join(iter_decrypt(bytes.fromhex(case["envelope"]), bytes.fromhex(case["data_key"]), record_id=ad[:32],
                                 version=int.from_bytes(ad[32:40], "big"), context=ad[40:]))


def _package(case: dict[str, Any]) -> bytes:
    exp = case["expected"]
    content_hash = bytes.fromhex(exp["content_hash"]) if "content_hash" in exp else None
    return bytes(gen.python_open(bytes.fromhex(case["package"]), NAME_OF[case["reader"]], _secrets(case["x25519_secrets"]),
                                 _binding(exp), content_hash))


def _share_key(case: dict[str, Any], b: dict[str, Any]) -> bytes:
    share = KeyShare.from_bytes(bytes.fromhex(case["share_hex"]) if "share_hex" in case else case["share"].encode())
    binding = _binding(b)
    reader = gen.identity(NAME_OF[case["reader"]], _secrets(case["x25519_secrets"]))
    info = gen.RecordInfo(binding.record_id, b["patient"], b["author"], binding.scope, "active", b"", gen.Cid("v"),
                          None, 0, 0, "0x")
    return bytes(ShareIndex.of(share).data_key(reader, info, binding))


def test_good_vectors_open_with_the_current_python_code() -> None:
    for case in load_vectors("wrap")["cases"]:
        key = unwrap_data_key(bytes.fromhex(case["wrapped"]), bytes.fromhex(case["recipient_secret"]),
                              associated_data=bytes.fromhex(case["associated_data"]))
        assert key.hex() == case["data_key"]
        assert _binding(case["binding"]).associated_data.hex() == case["associated_data"]
    for case in load_vectors("envelope")["cases"]:
        assert _envelope(case).hex() == case["plaintext"]
    for case in load_vectors("package")["cases"]:
        assert _package(case).hex() == case["plaintext"]
    for case in load_vectors("seal")["cases"]:
        assert fragment_associated_data(case["custodian"], bytes.fromhex(case["record_id"]),
                                        case["grantee"]).hex() == case["associated_data"]
        assert open_sealed(bytes.fromhex(case["sealed"]), bytes.fromhex(case["recipient_secret"]),
                           associated_data=bytes.fromhex(case["associated_data"])).hex() == case["payload"]
    for case in load_vectors("keyshare")["cases"]:
        share = KeyShare.from_bytes(case["share"].encode())
        assert share.patient == case["parsed"]["patient"] and share.grantee == case["parsed"]["grantee"]
        assert [_share_key(case, b).hex() for b in case["bindings"]] == case["data_keys"]


REFUSED = [(kind, case) for kind in FILES for case in load_vectors(kind)["negative"]]


@pytest.mark.parametrize(("kind", "case"), REFUSED, ids=[f"{k}: {c['name']}" for k, c in REFUSED])
def test_negative_vectors_raise_the_recorded_python_error(kind: str, case: dict[str, Any]) -> None:
    def attempt() -> object:
        if kind == "wrap":
            return unwrap_data_key(bytes.fromhex(case["wrapped"]), bytes.fromhex(case["recipient_secret"]),
                                   associated_data=bytes.fromhex(case["associated_data"]))
        if kind == "envelope":
            return _envelope(case)
        if kind == "package":
            return _package(case)
        if kind == "seal":
            return open_sealed(bytes.fromhex(case["sealed"]), bytes.fromhex(case["recipient_secret"]),
                               associated_data=bytes.fromhex(case["associated_data"]))
        if "binding" in case:
            return _share_key(case, case["binding"])
        return KeyShare.from_bytes(bytes.fromhex(case["share_hex"]))

    with pytest.raises(Exception) as raised:
        attempt()
    assert type(raised.value).__name__ == case["error"]["python"]
