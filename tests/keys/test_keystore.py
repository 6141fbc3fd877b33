"""Keystore: keys round-trip, stay encrypted and owner-only, rotate, and fail with typed errors."""

from __future__ import annotations

import json
import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
import umbral_pre
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_account import Account
from eth_account.messages import encode_defunct
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ehr_client.errors import CorruptKeystore, KeyNotFound, KeyRevoked, KeystoreError, WrongPassword
from ehr_client.keys import DEFAULT_SCRYPT_N, Keystore
from tests.keys.conftest import PASSWORD, T0, TEST_SCRYPT_N

KNOWN_KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- wallets -------------------------------------------------------------------------------


def test_generated_wallet_loads_and_signs(keystore: Keystore) -> None:
    info = keystore.generate_wallet("main", PASSWORD)

    account = keystore.load_wallet("main", PASSWORD)
    signed = account.sign_message(encode_defunct(text="hello"))

    assert account.address == info.address
    assert Account.recover_message(encode_defunct(text="hello"), signature=signed.signature) == info.address


@pytest.mark.parametrize("form", ["bytes", "hex", "0xhex"])
def test_imported_wallet_keeps_its_address(keystore: Keystore, form: str) -> None:
    forms: dict[str, bytes | str] = {"bytes": KNOWN_KEY, "hex": KNOWN_KEY.hex(), "0xhex": "0x" + KNOWN_KEY.hex()}
    key = forms[form]

    info = keystore.import_wallet("imported", key, PASSWORD)

    assert info.address == Account.from_key(KNOWN_KEY).address
    assert bytes(keystore.load_wallet("imported", PASSWORD).key) == KNOWN_KEY


@pytest.mark.parametrize("key", [b"\x00" * 32, b"\xff" * 32, b"\x01" * 31, "0x1234", "zz" * 32])
def test_invalid_private_key_is_refused(keystore: Keystore, key: bytes | str) -> None:
    with pytest.raises(KeystoreError, match="private key"):
        keystore.import_wallet("bad", key, PASSWORD)


def test_exported_wallet_is_a_standard_keyfile(keystore: Keystore) -> None:
    keystore.import_wallet("main", KNOWN_KEY, PASSWORD)

    exported = keystore.export_wallet("main", PASSWORD)

    assert "ehr" not in exported and exported["version"] == 3
    assert bytes(Account.decrypt(exported, PASSWORD)) == KNOWN_KEY


def test_export_needs_the_right_password(keystore: Keystore) -> None:
    keystore.generate_wallet("main", PASSWORD)

    with pytest.raises(WrongPassword):
        keystore.export_wallet("main", "wrong")


def test_wallet_name_cannot_be_reused(keystore: Keystore) -> None:
    keystore.generate_wallet("main", PASSWORD)

    with pytest.raises(KeystoreError, match="already exists"):
        keystore.import_wallet("main", KNOWN_KEY, PASSWORD)
    assert keystore.load_wallet("main", PASSWORD).address != Account.from_key(KNOWN_KEY).address


@pytest.mark.parametrize("name", ["", "../escape", "Main", "a/b", "x" * 65, ".hidden"])
def test_bad_wallet_name_is_refused(keystore: Keystore, name: str) -> None:
    with pytest.raises(KeystoreError, match="bad wallet name"):
        keystore.generate_wallet(name, PASSWORD)


def test_empty_password_is_refused(keystore: Keystore) -> None:
    with pytest.raises(KeystoreError, match="empty password"):
        keystore.generate_wallet("main", "")
    with pytest.raises(KeystoreError, match="empty password"):
        keystore.generate_encryption_key(password="")


def test_missing_wallet_raises_key_not_found(keystore: Keystore) -> None:
    with pytest.raises(KeyNotFound):
        keystore.load_wallet("nobody", PASSWORD)


# -- encryption keys -----------------------------------------------------------------------


def test_x25519_key_round_trips_and_agrees(keystore: Keystore) -> None:
    info = keystore.generate_encryption_key("x25519", password=PASSWORD)

    key = keystore.load_encryption_key("x25519", PASSWORD)
    private = X25519PrivateKey.from_private_bytes(key.secret)
    peer = X25519PrivateKey.generate()

    assert (key.version, key.public_key, len(info.public_key)) == (1, info.public_key, 32)
    assert private.public_key().public_bytes_raw() == info.public_key
    assert private.exchange(peer.public_key()) == peer.exchange(private.public_key())


def test_umbral_key_round_trips_and_decrypts(keystore: Keystore) -> None:
    info = keystore.generate_encryption_key("umbral", password=PASSWORD)

    key = keystore.load_encryption_key("umbral", PASSWORD)
    secret = umbral_pre.SecretKey.from_be_bytes(key.secret)
    public = umbral_pre.PublicKey.from_compressed_bytes(info.public_key)
    capsule, ciphertext = umbral_pre.encrypt(public, b"data key")

    assert umbral_pre.decrypt_original(secret, capsule, ciphertext) == b"data key"
    assert len(info.public_key) == 33


def test_rotation_adds_a_version_and_keeps_the_old_one(keystore: Keystore) -> None:
    first = keystore.generate_encryption_key("x25519", password=PASSWORD)
    second = keystore.rotate_encryption_key("x25519", password=PASSWORD)

    old = keystore.load_encryption_key("x25519", PASSWORD, version=1)
    latest = keystore.load_encryption_key("x25519", PASSWORD)

    assert (first.version, second.version, latest.version) == (1, 2, 2)
    assert old.public_key == first.public_key != second.public_key == latest.public_key


def test_rotate_without_a_key_raises_key_not_found(keystore: Keystore) -> None:
    with pytest.raises(KeyNotFound, match="generate one first"):
        keystore.rotate_encryption_key("umbral", password=PASSWORD)


def test_kinds_have_separate_version_series(keystore: Keystore) -> None:
    keystore.generate_encryption_key("x25519", password=PASSWORD)
    keystore.generate_encryption_key("x25519", password=PASSWORD)

    assert keystore.generate_encryption_key("umbral", password=PASSWORD).version == 1


@pytest.mark.parametrize("version", [None, 1, 7])
def test_missing_encryption_key_raises_key_not_found(keystore: Keystore, version: int | None) -> None:
    if version == 7:
        keystore.generate_encryption_key(password=PASSWORD)
    with pytest.raises(KeyNotFound):
        keystore.load_encryption_key("x25519", PASSWORD, version=version)


def test_unknown_key_kind_is_refused(keystore: Keystore) -> None:
    with pytest.raises(KeystoreError, match="x25519 or umbral"):
        keystore.generate_encryption_key("rsa", password=PASSWORD)  # type: ignore[arg-type]


def test_wrong_password_raises_wrong_password(keystore: Keystore) -> None:
    keystore.generate_wallet("main", PASSWORD)
    keystore.generate_encryption_key("umbral", password=PASSWORD)

    with pytest.raises(WrongPassword):
        keystore.load_wallet("main", PASSWORD + "!")
    with pytest.raises(WrongPassword):
        keystore.load_encryption_key("umbral", "")


# -- revocation ----------------------------------------------------------------------------


def test_revoked_latest_key_is_refused_but_stays_readable_by_version(keystore: Keystore) -> None:
    keystore.generate_encryption_key(password=PASSWORD)
    keystore.mark_revoked("x25519", 1, now=T0)

    with pytest.raises(KeyRevoked, match="rotate"):
        keystore.load_encryption_key("x25519", PASSWORD)
    assert keystore.load_encryption_key("x25519", PASSWORD, version=1).version == 1
    assert keystore.info("x25519").revoked == T0


def test_rotating_after_revocation_gives_a_usable_latest_key(keystore: Keystore) -> None:
    keystore.generate_encryption_key(password=PASSWORD)
    keystore.mark_revoked("x25519", 1)
    keystore.rotate_encryption_key(password=PASSWORD)

    assert keystore.load_encryption_key("x25519", PASSWORD).version == 2


def test_marking_revoked_twice_keeps_the_first_time(keystore: Keystore) -> None:
    keystore.generate_encryption_key(password=PASSWORD)
    keystore.mark_revoked("x25519", 1, now=T0)

    again = keystore.mark_revoked("x25519", 1, now=T0 + timedelta(days=1))

    assert again.revoked == T0


def test_marking_a_missing_version_revoked_raises_key_not_found(keystore: Keystore) -> None:
    with pytest.raises(KeyNotFound):
        keystore.mark_revoked("umbral", 3)


# -- listing -------------------------------------------------------------------------------


def test_list_shows_every_key_without_secrets(keystore: Keystore) -> None:
    keystore.import_wallet("main", KNOWN_KEY, PASSWORD, now=T0)
    keystore.generate_encryption_key("x25519", password=PASSWORD, now=T0)
    keystore.rotate_encryption_key("x25519", password=PASSWORD, now=T0)
    keystore.generate_encryption_key("umbral", password=PASSWORD, now=T0)
    secrets = [KNOWN_KEY] + [keystore.load_encryption_key(kind, PASSWORD, version=v).secret
                             for kind, v in (("x25519", 1), ("x25519", 2), ("umbral", 1))]

    listing = keystore.list()
    shown = repr(listing)

    assert [(i.kind, i.name, i.version) for i in listing] == [
        ("secp256k1", "main", 1), ("umbral", "umbral-v1", 1), ("x25519", "x25519-v1", 1), ("x25519", "x25519-v2", 2)]
    assert listing[0].address == Account.from_key(KNOWN_KEY).address
    assert all(i.created == T0 and i.revoked is None for i in listing)
    for secret in secrets:
        assert secret.hex() not in shown and repr(secret) not in shown


def test_list_of_a_missing_directory_is_empty(tmp_path: Path) -> None:
    assert Keystore(tmp_path / "none").list() == []


def test_unlocked_key_repr_hides_the_secret(keystore: Keystore) -> None:
    keystore.generate_encryption_key(password=PASSWORD)
    key = keystore.load_encryption_key("x25519", PASSWORD)

    assert key.secret.hex() not in repr(key) and "secret" not in repr(key)


# -- files ---------------------------------------------------------------------------------


def test_files_are_owner_only_and_no_temp_files_remain(keystore: Keystore) -> None:
    old_umask = os.umask(0)
    try:
        keystore.generate_wallet("main", PASSWORD)
        keystore.generate_encryption_key(password=PASSWORD)
        keystore.mark_revoked("x25519", 1)
    finally:
        os.umask(old_umask)

    files = sorted(keystore.path.iterdir())

    assert [p.name for p in files] == ["wallet-main.json", "x25519-v1.json"]
    assert _mode(keystore.path) == 0o700
    assert all(_mode(p) == 0o600 for p in files)


def test_key_files_are_scrypt_keyfiles_with_the_configured_cost(keystore: Keystore) -> None:
    keystore.generate_encryption_key("umbral", password=PASSWORD)

    doc = json.loads((keystore.path / "umbral-v1.json").read_text())

    assert doc["version"] == 3 and doc["crypto"]["kdf"] == "scrypt"
    assert doc["crypto"]["kdfparams"]["n"] == TEST_SCRYPT_N
    assert doc["ehr"]["type"] == "umbral" and doc["ehr"]["version"] == 1
    assert "address" not in doc


def test_production_scrypt_cost_is_the_eth_account_default() -> None:
    assert DEFAULT_SCRYPT_N == 2**18


@pytest.mark.parametrize("scrypt_n", [0, 1, 1000])
def test_scrypt_cost_must_be_a_power_of_two(tmp_path: Path, scrypt_n: int) -> None:
    with pytest.raises(KeystoreError):
        Keystore(tmp_path, scrypt_n=scrypt_n)


# -- corruption ----------------------------------------------------------------------------


def test_truncated_file_is_corrupt(keystore: Keystore) -> None:
    keystore.generate_encryption_key(password=PASSWORD)
    path = keystore.path / "x25519-v1.json"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])

    with pytest.raises(CorruptKeystore, match="x25519-v1.json"):
        keystore.load_encryption_key("x25519", PASSWORD)
    with pytest.raises(CorruptKeystore):
        keystore.list()


@settings(derandomize=True, max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.floats(min_value=0, max_value=1, exclude_max=True), mask=st.integers(min_value=1, max_value=255))
def test_any_flipped_byte_is_caught_or_harmless(keystore: Keystore, position: float, mask: int) -> None:
    if not (keystore.path / "x25519-v1.json").exists():
        keystore.generate_encryption_key(password=PASSWORD)
    path = keystore.path / "x25519-v1.json"
    original = path.read_bytes()
    expected = keystore.load_encryption_key("x25519", PASSWORD).secret
    damaged = bytearray(original)
    damaged[int(position * len(damaged))] ^= mask
    path.write_bytes(bytes(damaged))
    try:
        # Either the damage is detected as corruption (never as a wrong password), or it was
        # insignificant JSON whitespace and the same secret comes back.
        try:
            assert keystore.load_encryption_key("x25519", PASSWORD).secret == expected
        except CorruptKeystore:
            pass
    finally:
        path.write_bytes(original)


def test_edited_version_is_corrupt_even_with_a_fixed_checksum(keystore: Keystore) -> None:
    # A deliberate edit that recomputes the checksum is still caught by the keyed binding.
    from ehr_client.keys import _keyfile

    keystore.generate_encryption_key(password=PASSWORD, now=T0)
    path = keystore.path / "x25519-v1.json"
    doc = json.loads(path.read_text())
    doc["ehr"]["created"] = (T0 + timedelta(days=1)).isoformat()
    path.write_bytes(_keyfile.dumps(_keyfile.with_revoked(doc, None)))

    with pytest.raises(CorruptKeystore, match="binding"):
        keystore.load_encryption_key("x25519", PASSWORD)


def test_key_type_swapped_in_sidecar_is_corrupt(keystore: Keystore) -> None:
    from ehr_client.keys import _keyfile

    keystore.generate_encryption_key("umbral", password=PASSWORD)
    src = keystore.path / "umbral-v1.json"
    doc = json.loads(src.read_text())
    doc["ehr"].update(type="x25519", name="x25519-v1", public_key="00" * 32)
    (keystore.path / "x25519-v1.json").write_bytes(_keyfile.dumps(_keyfile.with_revoked(doc, None)))

    with pytest.raises(CorruptKeystore):
        keystore.load_encryption_key("x25519", PASSWORD)


def test_renamed_file_is_corrupt(keystore: Keystore) -> None:
    keystore.generate_encryption_key(password=PASSWORD)
    keystore.generate_encryption_key(password=PASSWORD)
    (keystore.path / "x25519-v1.json").replace(keystore.path / "x25519-v3.json")

    with pytest.raises(CorruptKeystore, match="x25519-v3.json"):
        keystore.load_encryption_key("x25519", PASSWORD)


def test_absurd_scrypt_cost_in_file_is_corrupt_not_a_hang(keystore: Keystore) -> None:
    from ehr_client.keys import _keyfile

    keystore.generate_encryption_key(password=PASSWORD)
    path = keystore.path / "x25519-v1.json"
    doc = json.loads(path.read_text())
    doc["crypto"]["kdfparams"]["n"] = 2**30
    path.write_bytes(_keyfile.dumps(_keyfile.with_revoked(doc, None)))

    with pytest.raises(CorruptKeystore, match="scrypt"):
        keystore.load_encryption_key("x25519", PASSWORD)


def test_unrelated_files_in_the_directory_are_ignored(keystore: Keystore) -> None:
    keystore.generate_wallet("main", PASSWORD)
    (keystore.path / "notes.txt").write_text("not a key")
    (keystore.path / "wallet-Upper.json").write_text("{}")

    assert [i.name for i in keystore.list()] == ["main"]
