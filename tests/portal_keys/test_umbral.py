"""@nucypher/umbral-pre 0.10.0 (WASM, through portal/src/umbral.js in node) against Python's
umbral-pre 0.11.0 (what ehr_client uses): keys, capsules, key fragments and capsule fragments
cross both ways byte for byte, and every refusal is an UmbralError on the JS side."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest
import umbral_pre
from eth_account import Account

from ehr_client.keys.derive import derive_from_account
from tests.portal_keys.conftest import run_node

JsOps = Callable[..., list[dict[str, Any]]]
VERIFICATION_ERROR: type[Exception] = umbral_pre.VerificationError  # type: ignore[attr-defined]  # missing from its stubs


@pytest.fixture(scope="module")
def js() -> JsOps:
    """Run a batch of umbral.js operations in one node process (WASM loaded from the package)."""
    def run(*ops: dict[str, Any], wasm: str = "pkg-bundler") -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = run_node("umbral_cli.mjs", {"wasm": wasm, "ops": list(ops)})["results"]
        return results

    return run


def _secret() -> umbral_pre.SecretKey:
    return umbral_pre.SecretKey.random()


def _pk(secret: umbral_pre.SecretKey) -> bytes:
    return bytes(secret.public_key().to_compressed_bytes())


def test_keys_match_including_a_wallet_derived_umbral_key(js: JsOps) -> None:
    derived = derive_from_account(Account.from_key("0x" + "11" * 32), chain_id=31337, verifying_contract="0x" + "22" * 20)
    secrets_ = [derived.umbral_secret] + [bytes(_secret().to_be_bytes()) for _ in range(8)]
    results = js(*({"op": "publicKey", "secret": s.hex()} for s in secrets_))
    expected = [_pk(umbral_pre.SecretKey.from_be_bytes(s)) for s in secrets_]
    assert [bytes.fromhex(r["publicKey"]) for r in results] == expected
    assert expected[0] == derived.umbral_public


def test_python_capsules_open_in_js_and_js_capsules_open_in_python(js: JsOps) -> None:
    owner = _secret()
    plaintext = secrets.token_bytes(80)
    capsule, ciphertext = umbral_pre.encrypt(owner.public_key(), plaintext)
    opened, made, trip = js(
        {"op": "decryptOriginal", "secret": bytes(owner.to_be_bytes()).hex(), "capsule": bytes(capsule).hex(),
         "ciphertext": bytes(ciphertext).hex()},
        {"op": "encrypt", "publicKey": _pk(owner).hex(), "plaintext": plaintext.hex()},
        {"op": "roundTrip", "kind": "capsule", "data": bytes(capsule).hex()},
    )
    assert bytes.fromhex(opened["plaintext"]) == plaintext
    assert bytes.fromhex(trip["data"]) == bytes(capsule)  # same serialisation, not just readable
    js_capsule = umbral_pre.Capsule.from_bytes(bytes.fromhex(made["capsule"]))
    assert bytes(js_capsule) == bytes.fromhex(made["capsule"]) and len(bytes(js_capsule)) == len(bytes(capsule))
    assert umbral_pre.decrypt_original(owner, js_capsule, bytes.fromhex(made["ciphertext"])) == plaintext


def test_js_kfrags_are_verified_reencrypted_and_decrypted_by_python(js: JsOps) -> None:
    """The browser delegates (the patient makes kfrags for custodians); Python custodians check
    them as ehr_client/custodian/core.py does and the Python grantee decrypts."""
    patient, grantee = _secret(), _secret()
    data_key = secrets.token_bytes(32)
    capsule, ciphertext = umbral_pre.encrypt(patient.public_key(), data_key)
    (made,) = js({"op": "generateKFrags", "delegatingSecret": bytes(patient.to_be_bytes()).hex(),
                  "receivingPublic": _pk(grantee).hex(), "threshold": 2, "shares": 3})
    assert len(made["kfrags"]) == 3
    delegating, receiving = patient.public_key(), grantee.public_key()
    verified = [umbral_pre.KeyFrag.from_bytes(bytes.fromhex(k)).verify(delegating, delegating, receiving)
                for k in made["kfrags"]]
    assert [bytes(k) for k in verified] == [bytes.fromhex(k) for k in made["kfrags"]]
    cfrags = [umbral_pre.reencrypt(capsule, k) for k in verified[:2]]
    assert umbral_pre.decrypt_reencrypted(grantee, delegating, capsule, cfrags, ciphertext) == data_key
    # kfrags for one grantee do not verify for another: Python refuses them
    with pytest.raises(VERIFICATION_ERROR):
        umbral_pre.KeyFrag.from_bytes(bytes.fromhex(made["kfrags"][0])).verify(delegating, delegating,
                                                                              _secret().public_key())


def test_python_kfrags_and_cfrags_work_in_js_and_js_cfrags_in_python(js: JsOps) -> None:
    patient, grantee = _secret(), _secret()
    data_key = secrets.token_bytes(32)
    capsule, ciphertext = umbral_pre.encrypt(patient.public_key(), data_key)
    kfrags = umbral_pre.generate_kfrags(patient, grantee.public_key(), umbral_pre.Signer(patient), 2, 3, True, True)
    py_cfrag = umbral_pre.reencrypt(capsule, kfrags[0])
    keys = {"verifyingPublic": _pk(patient).hex(), "delegatingPublic": _pk(patient).hex()}
    js_cfrag, kfrag_trip, cfrag_trip = js(
        {"op": "reencrypt", "capsule": bytes(capsule).hex(), "kfrag": bytes(kfrags[1]).hex(),
         "receivingPublic": _pk(grantee).hex(), **keys},
        {"op": "roundTrip", "kind": "kfrag", "data": bytes(kfrags[2]).hex()},
        {"op": "roundTrip", "kind": "cfrag", "data": bytes(py_cfrag).hex()},
    )
    assert bytes.fromhex(kfrag_trip["data"]) == bytes(kfrags[2])
    assert bytes.fromhex(cfrag_trip["data"]) == bytes(py_cfrag)
    # the JS cfrag, checked by Python as sharing/release.py does, opens the capsule with Python's own cfrag
    checked = umbral_pre.CapsuleFrag.from_bytes(bytes.fromhex(js_cfrag["cfrag"])).verify(
        capsule, patient.public_key(), patient.public_key(), grantee.public_key())
    assert umbral_pre.decrypt_reencrypted(grantee, patient.public_key(), capsule, [py_cfrag, checked],
                                          ciphertext) == data_key
    # and JS opens it with both cfrags (one made by Python, one by JS)
    (opened,) = js({"op": "decryptReencrypted", "receivingSecret": bytes(grantee.to_be_bytes()).hex(),
                    "capsule": bytes(capsule).hex(), "ciphertext": bytes(ciphertext).hex(),
                    "cfrags": [bytes(py_cfrag).hex(), js_cfrag["cfrag"]], **keys})
    assert bytes.fromhex(opened["plaintext"]) == data_key


def test_js_refuses_bad_fragments_and_too_few_with_an_umbral_error(js: JsOps) -> None:
    patient, grantee, other = _secret(), _secret(), _secret()
    capsule, ciphertext = umbral_pre.encrypt(patient.public_key(), b"k" * 32)
    kfrags = umbral_pre.generate_kfrags(patient, grantee.public_key(), umbral_pre.Signer(patient), 2, 3, True, True)
    cfrag = umbral_pre.reencrypt(capsule, kfrags[0])
    keys = {"verifyingPublic": _pk(patient).hex(), "delegatingPublic": _pk(patient).hex()}
    flipped = bytearray(bytes(kfrags[1]))
    flipped[100] ^= 1  # inside the key and commitment, which the custodian's check covers
    with pytest.raises(VERIFICATION_ERROR):
        umbral_pre.KeyFrag.from_bytes(bytes(flipped)).verify(patient.public_key(), patient.public_key(),
                                                             grantee.public_key())
    results = js(
        # a kfrag for `grantee` presented as one for `other`
        {"op": "reencrypt", "capsule": bytes(capsule).hex(), "kfrag": bytes(kfrags[1]).hex(),
         "receivingPublic": _pk(other).hex(), **keys},
        {"op": "reencrypt", "capsule": bytes(capsule).hex(), "kfrag": flipped.hex(),
         "receivingPublic": _pk(grantee).hex(), **keys},
        # one cfrag where two are needed
        {"op": "decryptReencrypted", "receivingSecret": bytes(grantee.to_be_bytes()).hex(), "capsule": bytes(capsule).hex(),
         "ciphertext": bytes(ciphertext).hex(), "cfrags": [bytes(cfrag).hex()], **keys},
        # the owner's key opening someone else's capsule
        {"op": "decryptOriginal", "secret": bytes(other.to_be_bytes()).hex(), "capsule": bytes(capsule).hex(),
         "ciphertext": bytes(ciphertext).hex()},
        {"op": "roundTrip", "kind": "capsule", "data": bytes(capsule)[:-1].hex()},
        {"op": "generateKFrags", "delegatingSecret": bytes(patient.to_be_bytes()).hex(),
         "receivingPublic": _pk(grantee).hex(), "threshold": 3, "shares": 2},
    )
    assert [r.get("error", {}).get("name") for r in results] == ["UmbralError"] * len(results)


def test_a_kfrag_altered_in_its_receiver_signature_passes_custodians_but_not_the_grantee_in_both(js: JsOps) -> None:
    """Bytes 244-307 of a kfrag sign for the receiver: neither library checks them when a custodian
    verifies the kfrag, both refuse the resulting cfrag when the grantee verifies it."""
    patient, grantee = _secret(), _secret()
    capsule, ciphertext = umbral_pre.encrypt(patient.public_key(), b"k" * 32)
    kfrag = bytes(umbral_pre.generate_kfrags(patient, grantee.public_key(), umbral_pre.Signer(patient), 1, 1,
                                             True, True)[0])
    altered = bytearray(kfrag)
    altered[-5] ^= 1
    keys = {"verifyingPublic": _pk(patient).hex(), "delegatingPublic": _pk(patient).hex()}
    py_verified = umbral_pre.KeyFrag.from_bytes(bytes(altered)).verify(patient.public_key(), patient.public_key(),
                                                                      grantee.public_key())
    py_cfrag = bytes(umbral_pre.reencrypt(capsule, py_verified))
    (made,) = js({"op": "reencrypt", "capsule": bytes(capsule).hex(), "kfrag": altered.hex(),
                  "receivingPublic": _pk(grantee).hex(), **keys})
    for cfrag in (py_cfrag, bytes.fromhex(made["cfrag"])):
        with pytest.raises(VERIFICATION_ERROR):
            umbral_pre.CapsuleFrag.from_bytes(cfrag).verify(capsule, patient.public_key(), patient.public_key(),
                                                           grantee.public_key())
        (opened,) = js({"op": "decryptReencrypted", "receivingSecret": bytes(grantee.to_be_bytes()).hex(),
                        "capsule": bytes(capsule).hex(), "ciphertext": bytes(ciphertext).hex(),
                        "cfrags": [cfrag.hex()], **keys})
        assert opened["error"]["name"] == "UmbralError"
