"""Key failures end clearly: a key revoked on chain is never encrypted to, a wrong password or a
corrupted keystore stops the identity from loading, each with its typed error.

Keystore-level cases are in tests/keys/test_keystore.py and not repeated: wrong password
(test_wrong_password_raises_wrong_password), truncated, bit-flipped, edited, type-swapped and
renamed files (CorruptKeystore), an absurd scrypt cost (not a hang), and a locally revoked
latest key (test_revoked_latest_key_is_refused_but_stays_readable_by_version -> KeyRevoked).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ehr_client.chain.client import ChainClient
from ehr_client.client import EHRClient, Identity
from ehr_client.crypto import generate_x25519_keypair
from ehr_client.errors import CorruptKeystore, KeyNotFound, KeyRevoked, WrongPassword
from ehr_client.keys import Keystore
from ehr_client.records import Scope
from ehr_client.storage import LocalStore
from tests.constants import ACCESS_AMEND, DAY, PURPOSE
from tests.security.suite import signer_of

X25519 = 1
LAB = int(Scope.LAB)
PASSWORD = "correct horse battery staple"
OBSERVATION = {
    "resourceType": "Observation",
    "status": "final",
    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                              "code": "laboratory"}]}],
    "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
    "valueQuantity": {"value": 5.4, "unit": "mmol/L"},
}


def _client(chain: ChainClient, store: LocalStore, ape_account: Any, state: Path) -> EHRClient:
    identity = Identity.from_private_keys(signer_of(ape_account).key, {1: generate_x25519_keypair().private_key})
    return EHRClient(chain, store, identity, state_dir=state / ape_account.address)


def _revoke_on_chain(client: EHRClient, version: int) -> None:
    client.chain.transact(client.identity.account, client.chain.keys.functions.revokeKey(X25519, version),
                          action="revoke key")


def _blobs(store: LocalStore) -> list[Path]:
    return [p for p in store.root.rglob("*") if p.is_file()]


def test_nobody_encrypts_to_a_key_revoked_on_chain(
    suite_chain: ChainClient, network: Any, patient: Any, lab: Any, chain: Any, tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "store")
    me, writer = _client(suite_chain, store, patient, tmp_path), _client(suite_chain, store, lab, tmp_path)
    version = me.publish_key()
    network["consent"].grant(lab, LAB, ACCESS_AMEND, chain.pending_timestamp + DAY, PURPOSE, sender=patient)
    _revoke_on_chain(me, version)

    with pytest.raises(KeyNotFound, match="no active encryption key"):
        writer.encryption_key_of(me.address)
    with pytest.raises(KeyNotFound, match="no active encryption key"):
        writer.add_record(me.address, OBSERVATION)
    assert _blobs(store) == [] and me.list_records(me.address) == [] and writer.journal.pending() == []

    # after the patient publishes a new key, writes resume, sealed to the new version only
    assert me.publish_key() == version + 1
    written = writer.add_record(me.address, OBSERVATION)
    assert writer.encryption_key_of(me.address)[0] == version + 1
    assert me.read_record(written.record_id).resource()["code"]["coding"][0]["code"] == "2345-7"


def test_consent_is_not_signed_when_the_grantees_key_is_revoked(
    suite_chain: ChainClient, network: Any, patient: Any, doctor: Any, tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "store")
    me, reader = _client(suite_chain, store, patient, tmp_path), _client(suite_chain, store, doctor, tmp_path)
    me.publish_key()
    me.add_record(me.address, OBSERVATION)
    _revoke_on_chain(reader, reader.publish_key())
    now = suite_chain.now()
    with pytest.raises(KeyNotFound):
        me.sign_grant(reader.address, LAB, expires_at=now + DAY, deadline=now + 600)
    assert suite_chain.call(suite_chain.consent.functions.nonces(me.address, reader.address), action="nonce") == 0


def test_direct_grant_to_a_revoked_key_fails_before_anything_is_granted(
    suite_chain: ChainClient, network: Any, patient: Any, doctor: Any, tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path / "store")
    me, reader = _client(suite_chain, store, patient, tmp_path), _client(suite_chain, store, doctor, tmp_path)
    me.publish_key()
    me.add_record(me.address, OBSERVATION)
    _revoke_on_chain(reader, reader.publish_key())
    with pytest.raises(KeyNotFound):
        me.grant(reader.address, LAB, expires_at=suite_chain.now() + DAY)
    assert not suite_chain.call(suite_chain.consent.functions.canRead(me.address, reader.address, LAB), action="r")


@pytest.fixture
def keystore(tmp_path: Path) -> Keystore:
    store = Keystore(tmp_path / "keys", scrypt_n=2**4)
    store.generate_wallet("main", PASSWORD)
    store.generate_encryption_key("x25519", password=PASSWORD)
    return store


def test_identity_does_not_load_with_a_wrong_password(keystore: Keystore) -> None:
    with pytest.raises(WrongPassword):
        Identity.from_keystore(keystore, "main", PASSWORD + "x")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_identity_does_not_load_from_a_corrupted_keystore(keystore: Keystore, damage: str) -> None:
    wallet = next(keystore.path.glob("wallet-main.json"))
    data = wallet.read_bytes()
    wallet.chmod(0o600)
    wallet.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00\xff" * 40, "empty": b""}[damage])
    with pytest.raises(CorruptKeystore):
        Identity.from_keystore(keystore, "main", PASSWORD)


def test_locally_revoked_key_cannot_be_loaded_to_encrypt_but_old_versions_open(keystore: Keystore) -> None:
    keystore.mark_revoked("x25519", 1)
    with pytest.raises(KeyRevoked, match="rotate"):
        keystore.load_encryption_key("x25519", PASSWORD)
    identity = Identity.from_keystore(keystore, "main", PASSWORD)  # every version, for reading old records
    assert set(identity.x25519) == {1}
