"""Keys derived from a wallet signature: fixed vectors, byte-identical in Python and in
portal/src/keys.js (real node), the same signature from every third-party signer, and refusals
(non-canonical, non-deterministic, another account) with typed errors and nothing stored."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from ehr_client.crypto import unwrap_data_key, wrap_data_key
from ehr_client.errors import KeyDerivationRefused, NonDeterministicWallet, SignatureError
from ehr_client.keys import Identity, Keystore
from ehr_client.keys._material import public_key
from ehr_client.keys.derive import (
    SECP256K1_N,
    STATEMENT,
    check_signature,
    derivation_typed_data,
    derive_from_account,
    derive_from_signer,
    derive_keys,
)

Js = Callable[[dict[str, Any]], dict[str, Any]]

# (private key, chain id, KeyRegistry, generation) -> signature, x25519 secret/public, umbral secret/public.
# Written once from this code; a change here changes every patient's keys, so it must never happen silently.
VECTORS = [
    (("0x" + "11" * 32, 31337, "0x" + "22" * 20, 1),
     ("90bfea833f0c3af42b18b2d891b4357da3b85bb8c53413be5acbabdd69e10d9c696562ad65fa438de3a6da0f7a2ed23a97950483505f8f63e3f117d8650a5c691b",
      "700180f210a9240dcd4343c4c77e28f1448e92c68ca25c42fbb104ab8159a3e8",
      "1ead1ae8282cd2cf66cdc1b3846b4be9c41a67eb725e1adb8d443599db1fe83b",
      "6bbea3b36cebd66c0f463b8f2e7e69dcdb6b0f8693a518fc9371561889849912",
      "037f409025379c06e96b9a716ef182a8d7e8899a75ccf712c31c7cba5ace321ebb")),
    (("0x" + "ab" * 32, 1337, "0x5FbDB2315678afecb367f032d93F642f64180aa3", 7),
     ("5fc777cc2044cb8f8d277f39fadfdee8a59a48867ae207e8310b9f638e6830772d7eb60cbd114f8f394c336fc68255541f8d6ca124e148208aad4ceb41c2cf721c",
      "d741632c9501896451ff1c6bbda1d8f520f776aacfa77e80822092067ebfb6ce",
      "710da14481526d2407b1bf25d86a721b33c5c0d7c9b30b03acdf8446e8ad8438",
      "3f62a9eb758b3ab5e394e53b476e3e9d52bf98d64a6f88b9a3bc47cb00bdee7c",
      "022d0ae7ede3a34174dcac2a0213f519561b79b4f7e1a18f34fc403e81125727f6")),
]
LIBS = ("eth-sig-util", "ethers", "viem")


def _typed(key: str, chain_id: int, contract: str, generation: int) -> dict[str, Any]:
    return derivation_typed_data(chain_id=chain_id, verifying_contract=contract,
                                 account=Account.from_key(key).address, generation=generation)


def _sign(key: str, typed: dict[str, Any]) -> bytes:
    return bytes(Account.from_key(key).sign_message(encode_typed_data(full_message=typed)).signature)


def _keys_hex(signature: bytes) -> tuple[str, ...]:
    k = derive_keys(signature)
    return k.x25519_secret.hex(), k.x25519_public.hex(), k.umbral_secret.hex(), k.umbral_public.hex()


@pytest.mark.parametrize(("params", "expected"), VECTORS)
def test_fixed_vectors_derive_the_same_keys_every_time(params: tuple[str, int, str, int], expected: tuple[str, ...]) -> None:
    key, chain_id, contract, generation = params
    signature = _sign(key, _typed(*params))
    assert signature.hex() == expected[0]
    assert _keys_hex(signature) == expected[1:]
    derived = derive_from_account(Account.from_key(key), chain_id=chain_id, verifying_contract=contract,
                                  generation=generation)
    assert (derived.x25519_secret.hex(), derived.umbral_public.hex()) == (expected[1], expected[4])
    assert "secret" not in repr(derived).replace("_secret", "") and expected[1] not in repr(derived)


def test_the_message_names_the_deployment_and_warns_in_words() -> None:
    typed = _typed("0x" + "11" * 32, 31337, "0x" + "22" * 20, 1)
    assert typed["domain"] == {"name": "EHR key derivation", "version": "1", "chainId": 31337,
                               "verifyingContract": "0x" + "22" * 20}
    assert typed["message"]["statement"] == STATEMENT and "anyone who obtains it can read them" in STATEMENT
    base = _keys_hex(_sign("0x" + "11" * 32, typed))
    # every field moves the keys: another chain, deployment, generation or account derives other keys
    others = [("0x" + "11" * 32, 1, "0x" + "22" * 20, 1), ("0x" + "11" * 32, 31337, "0x" + "33" * 20, 1),
              ("0x" + "11" * 32, 31337, "0x" + "22" * 20, 2), ("0x" + "12" * 32, 31337, "0x" + "22" * 20, 1)]
    derived = {_keys_hex(_sign(params[0], _typed(*params))) for params in others}
    assert len(derived) == len(others) and base not in derived


def test_keys_js_derives_byte_identical_keys_for_many_wallets(keys_js: Js) -> None:
    rng = random.Random(19)  # fixed seed: the same cases on every run
    cases = [("0x" + rng.randbytes(32).hex(), rng.randint(1, 2**53 - 1), "0x" + rng.randbytes(20).hex(),
              rng.randint(1, 2**32 - 1)) for _ in range(48)]
    cases += [params for params, _ in VECTORS]
    signatures = [_sign(*case[:1], _typed(*case)) for case in cases]
    answer = keys_js({"op": "derive", "signatures": ["0x" + s.hex() for s in signatures]})
    for signature, js in zip(signatures, answer["keys"], strict=True):
        assert tuple(js[name].removeprefix("0x") for name in ("x25519Secret", "x25519Public", "umbralSecret",
                                                              "umbralPublic")) == _keys_hex(signature)


def test_keys_js_builds_the_same_document_and_digest(keys_js: Js) -> None:
    for params, _ in VECTORS:
        key, chain_id, contract, generation = params
        typed = _typed(*params)
        js = keys_js({"op": "typed", "chainId": chain_id, "verifyingContract": contract.lower(),
                      "account": Account.from_key(key).address.lower(), "generation": generation})
        assert js["typedData"] == typed
        assert js["digest"] == "0x" + keccak(b"\x19" + encode_typed_data(full_message=typed).version
                                             + encode_typed_data(full_message=typed).header
                                             + encode_typed_data(full_message=typed).body).hex()


def test_third_party_signers_give_the_same_signature_and_keys(keys_js: Js) -> None:
    """ethers 6 Wallet.signTypedData, viem signTypedData and MetaMask's eth-sig-util V4 sign the
    derivation message exactly as eth-account does, so they derive the same keys."""
    for params, expected in VECTORS:
        signed = keys_js({"op": "sign", "typedData": _typed(*params), "privateKey": params[0]})["signatures"]
        assert signed == dict.fromkeys(LIBS, "0x" + expected[0])


def test_keys_js_derive_from_wallet_asks_twice_and_matches_python(keys_js: Js) -> None:
    (key, chain_id, contract, generation), expected = VECTORS[1]
    deployment = {"chainId": chain_id, "contracts": {"KeyRegistry": contract}}
    answer = keys_js({"op": "wallet", "privateKey": key, "deployment": deployment, "generation": generation,
                      "mode": "ethers"})
    assert [r["method"] for r in answer["requests"]] == ["eth_signTypedData_v4"] * 2
    assert [answer["keys"][n].removeprefix("0x") for n in ("x25519Secret", "x25519Public", "umbralSecret",
                                                           "umbralPublic")] == list(expected[1:])


@pytest.mark.parametrize("damage", ["high-s", "v=0", "v=1", "v=29", "r=0", "s=0", "r=n", "64 bytes", "66 bytes"])
def test_non_canonical_signatures_are_refused_in_python_and_js(damage: str, keys_js: Js) -> None:
    good = bytes.fromhex(VECTORS[0][1][0])
    r, s, v = good[:32], int.from_bytes(good[32:64], "big"), good[64]
    bad = {
        "high-s": r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v]),  # the malleable twin: still valid ECDSA
        "v=0": good[:64] + b"\x00", "v=1": good[:64] + b"\x01", "v=29": good[:64] + b"\x1d",
        "r=0": bytes(32) + good[32:], "s=0": r + bytes(32) + good[64:],
        "r=n": SECP256K1_N.to_bytes(32, "big") + good[32:], "64 bytes": good[:64], "66 bytes": good + b"\x00",
    }[damage]
    with pytest.raises(KeyDerivationRefused, match="65 bytes|not canonical") as caught:
        derive_keys(bad)
    assert isinstance(caught.value, SignatureError) and isinstance(caught.value, ValueError)
    answer = keys_js({"op": "derive", "signatures": ["0x" + bad.hex()]})
    assert answer["error"]["name"] == "KeyDerivationError"
    assert check_signature(good) == good[:64]


def _random_k_signer(key: str) -> Callable[[dict[str, Any]], bytes]:
    """A wallet that signs correctly but without RFC 6979: OpenSSL's ECDSA with a random k."""
    private = ec.derive_private_key(int(key, 16), ec.SECP256K1())
    address = Account.from_key(key).address

    def sign(typed: dict[str, Any]) -> bytes:
        message = encode_typed_data(full_message=typed)
        digest = keccak(b"\x19" + message.version + message.header + message.body)
        r, s = decode_dss_signature(private.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()))))
        s = min(s, SECP256K1_N - s)
        for v in (27, 28):
            candidate = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])
            if Account.recover_message(message, signature=candidate) == address:
                return candidate
        raise AssertionError("no recovery id fits")

    return sign


def test_a_wallet_without_deterministic_signatures_is_refused_and_nothing_is_stored(tmp_path: Path, keys_js: Js) -> None:
    key, chain_id, contract, generation = VECTORS[0][0]
    account = Account.from_key(key)
    sign = _random_k_signer(key)
    one, two = sign(_typed(*VECTORS[0][0])), sign(_typed(*VECTORS[0][0]))
    assert one != two and check_signature(one) and check_signature(two)  # each alone is a valid signature
    keystore = Keystore(tmp_path / "keys", scrypt_n=16)
    with pytest.raises(NonDeterministicWallet, match="deterministically"):
        derived = derive_from_signer(sign, account=account.address, chain_id=chain_id, verifying_contract=contract)
        keystore.import_encryption_key("x25519", derived.x25519_secret, password="pw")
    assert keystore.list() == [] and not (tmp_path / "keys").exists()
    # the same in the browser: two valid random-k signatures, refused by deriveFromWallet
    pair = keys_js({"op": "random-k", "typedData": _typed(*VECTORS[0][0]), "privateKey": key})["signatures"]
    message = encode_typed_data(full_message=_typed(*VECTORS[0][0]))
    assert pair[0] != pair[1] and {Account.recover_message(message, signature=s) for s in pair} == {account.address}
    answer = keys_js({"op": "wallet", "privateKey": key, "mode": "random-k",
                      "deployment": {"chainId": chain_id, "contracts": {"KeyRegistry": contract}}})
    assert answer == {"error": {"name": "NonDeterministicWalletError", "message": answer["error"]["message"]}}
    assert "deterministically" in answer["error"]["message"]


def test_a_signature_by_another_account_is_refused(keys_js: Js) -> None:
    key, chain_id, contract, _ = VECTORS[0][0]
    other = Account.from_key("0x" + "42" * 32)
    with pytest.raises(KeyDerivationRefused, match=f"made by {other.address}"):
        derive_from_signer(lambda typed: _sign(other.key.hex(), typed), account=Account.from_key(key).address,
                           chain_id=chain_id, verifying_contract=contract)
    answer = keys_js({"op": "wallet", "privateKey": key, "mode": "other-account",
                      "deployment": {"chainId": chain_id, "contracts": {"KeyRegistry": contract}}})
    assert answer["error"]["name"] == "KeyDerivationError" and other.address in answer["error"]["message"]


@pytest.mark.parametrize("bad", [{"chain_id": 0}, {"chain_id": 2**53}, {"generation": 0}, {"generation": 2**32},
                                 {"verifying_contract": "0x1234"}, {"account": "patient"}])
def test_bad_parameters_are_refused_before_anything_is_signed(bad: dict[str, Any]) -> None:
    asked: list[dict[str, Any]] = []
    params: dict[str, Any] = {"chain_id": 1, "verifying_contract": "0x" + "22" * 20, "account": "0x" + "33" * 20,
                              "generation": 1, **bad}
    account = params.pop("account")

    def sign(typed: dict[str, Any]) -> bytes:
        asked.append(typed)
        return b""

    with pytest.raises(KeyDerivationRefused):
        derive_from_signer(sign, account=account, **params)
    assert asked == []


def test_the_derived_identity_opens_what_was_sealed_to_its_public_keys(tmp_path: Path) -> None:
    key, chain_id, contract, _ = VECTORS[0][0]
    account = Account.from_key(key)
    derived = derive_from_account(account, chain_id=chain_id, verifying_contract=contract)
    identity = Identity.from_derived(account, derived)
    assert identity.address == account.address and identity.current_key == (1, derived.x25519_secret)
    assert identity.umbral_secret_for(derived.umbral_public) == derived.umbral_secret
    data_key = bytes(range(32))
    wrapped = wrap_data_key(data_key, derived.x25519_public, associated_data=b"ad")
    assert bytes(unwrap_data_key(bytes(wrapped), identity.current_key[1], associated_data=b"ad")) == data_key
    # kept in a keystore: stored once, idempotent, and the store gives back the same identity
    keystore = Keystore(tmp_path / "keys", scrypt_n=16)
    keystore.import_wallet("patient", key, "pw")
    assert keystore.import_encryption_key("x25519", derived.x25519_secret, password="pw")[1] is True
    assert keystore.import_encryption_key("x25519", derived.x25519_secret, password="pw")[1] is False
    assert keystore.import_encryption_key("umbral", derived.umbral_secret, password="pw")[1] is True
    stored = Identity.from_keystore(keystore, "patient", "pw")
    assert (dict(stored.x25519), dict(stored.umbral)) == ({1: derived.x25519_secret}, {1: derived.umbral_secret})


@settings(max_examples=60, derandomize=True, deadline=None)
@given(key=st.integers(1, SECP256K1_N - 1), chain_id=st.integers(1, 2**53 - 1), generation=st.integers(1, 2**32 - 1))
def test_every_eth_account_signature_derives_valid_storable_keys(key: int, chain_id: int, generation: int) -> None:
    private = "0x" + key.to_bytes(32, "big").hex()
    signature = _sign(private, _typed(private, chain_id, "0x" + "22" * 20, generation))
    derived = derive_keys(signature)
    for secret in (derived.x25519_secret, derived.umbral_secret):
        assert 1 <= int.from_bytes(secret, "big") < SECP256K1_N  # the keystore can hold it
    assert public_key("x25519", derived.x25519_secret) == derived.x25519_public
    assert public_key("umbral", derived.umbral_secret) == derived.umbral_public
    assert derived.x25519_secret != derived.umbral_secret
