"""State that survives restarts, key rotation, and erasure with custodian-signed receipts."""

import pytest

from ehr_client.chain.ids import record_id_of
from ehr_client.custodian.checks import KEY_CUSTODIAN_ROLE
from ehr_client.custodian.messages import CustodianDomain
from ehr_client.sharing.remote import ErasureReceipt
from ehr_client.errors import AccessDenied, BlobNotFound, RecordErased, SignatureError
from ehr_client.records import Scope, canonicalize
from ehr_client.storage import cid_to_bytes
from tests.constants import DAY
from tests.custodian.conftest import custodian_address, fragments, key_request, post, releases, request_access, wait_until

LAB = int(Scope.LAB)


def _share(env, grantee):
    return env.sharing("patient").grant(env.clients[grantee].address, LAB, expires_at=env.chain.now() + DAY)


def test_restarted_custodian_keeps_fragments_refusals_releases_and_replay_memory(env, running, fhir_record,
                                                                                  observation):
    record_id = fhir_record()
    _share(env, "doctor")
    access_tx = request_access(env, "doctor", record_id)
    answered = key_request(env, 0, "doctor", record_id, access_tx)
    assert post(env, 0, "/v1/cfrags", answered).status_code == 200
    forged = key_request(env, 0, "doctor", record_id, access_tx, signer=env.identities["stranger"])
    assert post(env, 0, "/v1/cfrags", forged).json()["reason"] == "bad-signature"
    store = running[0].store()
    refusals_before = store.refusals(record_id=record_id)
    store.close()

    running[0].kill()
    running[0].start()

    store = running[0].store()
    assert store.refusals(record_id=record_id) == refusals_before
    assert store.count_fragments(record_id=record_id) == 1
    store.close()
    assert releases(env, record_id)[0] == 1
    assert post(env, 0, "/v1/cfrags", answered).json()["reason"] == "replayed-request"
    assert post(env, 0, "/v1/cfrags", forged).json()["reason"] == "bad-signature"
    assert env.sharing("doctor").read_record(record_id).data == canonicalize(observation)
    assert releases(env, record_id) == [2, 1, 0]  # custodians are asked in turn: the restarted one first


def test_rotation_unpins_old_blob_and_reissues_only_to_grantees_still_valid(env, running, fhir_record,
                                                                            observation):
    record_id = fhir_record()
    patient = env.sharing("patient")
    _share(env, "doctor")
    _share(env, "hospital")
    old_cid = env.clients["patient"].get_record(record_id).cid
    env.clients["patient"].revoke(env.clients["hospital"].address)

    rotation = patient.rotate(record_id)

    new_id = rotation.written.record_id
    assert rotation.unpinned == old_cid and rotation.written.cid != old_cid
    assert not env.store.has(old_cid)
    with pytest.raises(BlobNotFound):
        env.store.get(old_cid)
    assert rotation.reissued_to == (env.clients["doctor"].address,)
    assert fragments(env, record_id) == [0, 0, 0]
    assert fragments(env, new_id) == [1, 1, 1]
    for custodian in running:
        store = custodian.store()
        assert store.fragment(new_id, env.clients["hospital"].address) is None
        store.close()
    info = env.clients["patient"].get_record(new_id)
    assert info.previous_id == record_id and info.status == "active"
    assert env.sharing("doctor").read_record(new_id).data == canonicalize(observation)
    with pytest.raises(AccessDenied):
        env.sharing("hospital").read_record(new_id)
    with pytest.raises(BlobNotFound):
        env.sharing("doctor").read_record(record_id)


def test_erasure_shreds_fragments_everywhere_with_verifiable_receipts(env, running, fhir_record):
    record_id = fhir_record()
    _share(env, "doctor")
    doctor = env.sharing("doctor")
    doctor.read_record(record_id)
    cid = env.clients["patient"].get_record(record_id).cid
    late_custodian = custodian_address(env, 2)
    running[2].kill()  # down during the erasure: it must shred when it sees the tombstone

    erasure = env.sharing("patient").erase(record_id)

    assert erasure.record_ids == (record_id,) and len(erasure.tombstone_txs) == 1
    assert erasure.unavailable == (running[2].url,)
    domain = CustodianDomain(env.chain.chain_id, env.chain.consent.address)
    signers = {r.signer(domain) for r in erasure.receipts}
    assert signers == {custodian_address(env, 0), custodian_address(env, 1)}
    for receipt in erasure.receipts:
        receipt.verify(domain)
        assert receipt.record_id == record_id and receipt.destroyed == 1 and receipt.remaining == 0
        assert env.chain.call(env.chain.consortium.functions.hasActiveRole(receipt.signer(domain), KEY_CUSTODIAN_ROLE),
                              action="check custodian")
    assert not env.store.has(cid)
    with pytest.raises(RecordErased):
        doctor.read_record(record_id)

    running[2].start()
    assert wait_until(lambda: fragments(env, record_id) == [0, 0, 0])
    late = [r for r in env.sharing("patient").collect_receipts(record_id) if r.custodian == late_custodian]
    assert len(late) == 1 and late[0].destroyed == 1 and late[0].remaining == 0
    late[0].verify(domain)
    trail = env.clients["patient"].audit_trail(env.clients["patient"].address)
    assert any(e.event == "RecordTombstoned" and e.record_id == record_id for e in trail)


def test_tampered_receipt_does_not_verify(env, running, fhir_record):
    record_id = fhir_record()
    _share(env, "doctor")
    receipt = env.sharing("patient").erase(record_id).receipts[0]
    forged = ErasureReceipt.from_json({"message": {**receipt.message, "remaining": 0, "destroyed": 7},
                                       "signature": receipt.signature})

    with pytest.raises(SignatureError):
        forged.verify(CustodianDomain(env.chain.chain_id, env.chain.consent.address))


def test_custodian_database_is_private_and_holds_no_totp_secret_in_clear(env, running):
    for index, custodian in enumerate(running):
        address = custodian_address(env, index)
        files = [p for p in custodian.db.parent.glob("custodian.db*") if p.is_file()]
        assert custodian.db in files
        assert all(p.stat().st_mode & 0o077 == 0 for p in files)
        stored = b"".join(p.read_bytes() for p in files)
        secrets_here = [device.secrets[address].encode() for device in env.devices.values()]
        assert secrets_here and not any(secret in stored for secret in secrets_here)


def test_erasing_a_copy_a_member_re_listed_leaves_the_original_s_bytes(env, running, fhir_record, observation):
    """A lab with the patient's amend grant lists the patient's own record's CID under a new id of
    its own (the chain lets any author point at any CID). The copy cannot be read (its package names
    the original), so the patient erases it as junk: only the copy is tombstoned, and the bytes stay,
    because they belong to the original, which still reads."""
    record_id = fhir_record()
    patient, lab = env.clients["patient"], env.clients["lab"]
    original = patient.get_record(record_id)
    patient.grant(lab.address, LAB, access="amend", expires_at=env.chain.now() + DAY, share_keys=False)
    salt = b"\x5a" * 32
    lab.chain.transact(lab.identity.account, lab.chain.records.functions.addRecord(
        salt, patient.address, original.content_hash, LAB, cid_to_bytes(original.cid)), action="re-list")
    copy = patient.get_record(record_id_of(lab.address, salt))
    assert copy.cid == original.cid

    erasure = env.sharing("patient").erase(copy.record_id)

    assert erasure.record_ids == (copy.record_id,) and erasure.unpinned == ()
    assert env.store.has(original.cid)
    assert patient.get_record(copy.record_id).status == "tombstoned"
    assert patient.read_record(record_id).data == canonicalize(observation)  # the original still reads


def test_a_custodian_suspended_while_the_client_runs_is_sealed_nothing_more(env, running, fhir_record, observation,
                                                                           ids):
    """The consortium suspends a custodian after a long-running client verified it: the client asks
    the chain again before each use, so the next grant's fragments go to the two still active."""
    sharing = env.sharing("patient")  # verifies all three now
    first = fhir_record()
    sharing.grant(env.clients["doctor"].address, LAB, expires_at=env.chain.now() + DAY)
    assert fragments(env, first) == [1, 1, 1]
    env.chain.transact(ids["gov_a"].account, env.chain.consortium.functions.suspend(custodian_address(env, 2)),
                       action="suspend custodian")

    patient = env.clients["patient"]
    second = patient.add_record(patient.address, {**observation, "status": "amended"}).record_id
    sharing.grant(env.clients["hospital"].address, LAB, expires_at=env.chain.now() + DAY)
    assert fragments(env, second) == [1, 1, 0]
    assert fragments(env, first) == [2, 2, 1]
