import ape
import pytest

from ehr_client.chain.merkle import MerkleTree, record_leaf
from tests.constants import ACCESS_AMEND, ACCESS_READ, CONDITION_SCOPE, LAB_SCOPE

CID = b"\x01\x55\x12\x20" + b"\xab" * 32
HASH = b"\xcd" * 32


def rid(n: int) -> bytes:
    return n.to_bytes(32, "big")


def test_register_patient_is_idempotent(records, stranger):
    tx = records.registerPatient(sender=stranger)
    assert tx.events.filter(records.PatientRegistered)[0].patient == stranger.address
    assert records.isPatient(stranger)
    tx = records.registerPatient(sender=stranger)
    assert not tx.events.filter(records.PatientRegistered)


def test_patient_adds_own_record_and_event_carries_pointer(network, records, patient):
    tx = records.addRecord(rid(1), patient, HASH, LAB_SCOPE, CID, sender=patient)
    event = tx.events.filter(records.RecordAdded)[0]
    assert (event.recordId, event.patient, event.author) == (rid(1), patient.address, patient.address)
    assert (event.contentHash, event.scope, event.cid, event.previousId) == (HASH, LAB_SCOPE, CID, bytes(32))
    record = records.getRecord(rid(1))
    assert (record.patient, record.scope, record.status) == (patient.address, LAB_SCOPE, 1)


def test_unregistered_patient_cannot_receive_records(network, records, stranger):
    with ape.reverts(records.RecordPatientNotRegistered, patient=stranger.address):
        records.addRecord(rid(1), stranger, HASH, LAB_SCOPE, CID, sender=stranger)


def test_non_member_cannot_write(network, records, patient, stranger):
    with ape.reverts(records.RecordUnauthorizedAuthor, author=stranger.address, patient=patient.address, scope=LAB_SCOPE):
        records.addRecord(rid(1), patient, HASH, LAB_SCOPE, CID, sender=stranger)


def test_lab_writes_with_amend_grant_in_scope_only(network, records, patient, lab, grant):
    grant(lab, scopes=LAB_SCOPE, access=ACCESS_AMEND)
    tx = records.addRecord(rid(1), patient, HASH, LAB_SCOPE, CID, sender=lab)
    assert tx.events.filter(records.RecordAdded)[0].author == lab.address
    with ape.reverts(records.RecordUnauthorizedAuthor, author=lab.address, patient=patient.address, scope=CONDITION_SCOPE):
        records.addRecord(rid(2), patient, HASH, CONDITION_SCOPE, CID, sender=lab)


def test_read_grant_does_not_allow_writing(network, records, patient, hospital, grant):
    grant(hospital, scopes=LAB_SCOPE, access=ACCESS_READ)
    with ape.reverts(records.RecordUnauthorizedAuthor, author=hospital.address, patient=patient.address, scope=LAB_SCOPE):
        records.addRecord(rid(1), patient, HASH, LAB_SCOPE, CID, sender=hospital)


def test_suspended_member_loses_write_access(network, records, consortium, governor, patient, lab, grant):
    grant(lab, scopes=LAB_SCOPE, access=ACCESS_AMEND)
    consortium.suspend(lab, sender=governor)
    with ape.reverts(records.RecordUnauthorizedAuthor, author=lab.address, patient=patient.address, scope=LAB_SCOPE):
        records.addRecord(rid(1), patient, HASH, LAB_SCOPE, CID, sender=lab)


def test_expired_amend_grant_cannot_write(network, records, patient, lab, grant, chain):
    grant(lab, scopes=LAB_SCOPE, access=ACCESS_AMEND, ttl=3600)
    chain.pending_timestamp += 3601
    with ape.reverts(records.RecordUnauthorizedAuthor, author=lab.address, patient=patient.address, scope=LAB_SCOPE):
        records.addRecord(rid(1), patient, HASH, LAB_SCOPE, CID, sender=lab)


@pytest.mark.parametrize(
    "record_id, content_hash, scope, cid, error",
    [
        (rid(0), HASH, LAB_SCOPE, CID, "RecordIdUnavailable"),
        (rid(1), bytes(32), LAB_SCOPE, CID, "RecordInvalidContent"),
        (rid(1), HASH, 0, CID, "RecordInvalidContent"),
        (rid(1), HASH, LAB_SCOPE, b"", "RecordInvalidContent"),
    ],
)
def test_add_rejects_empty_fields(network, records, patient, record_id, content_hash, scope, cid, error):
    with ape.reverts(getattr(records, error), recordId=record_id):
        records.addRecord(record_id, patient, content_hash, scope, cid, sender=patient)


def test_record_id_cannot_be_reused(network, records, patient, add_record):
    record_id = add_record()
    with ape.reverts(records.RecordIdUnavailable, recordId=record_id):
        records.addRecord(record_id, patient, HASH, LAB_SCOPE, CID, sender=patient)


def test_amendments_keep_history(network, records, patient, lab, grant, add_record):
    first = add_record()
    grant(lab, scopes=LAB_SCOPE, access=ACCESS_AMEND)
    new_hash = b"\xee" * 32
    tx = records.amendRecord(first, rid(500), new_hash, CID, sender=lab)
    amended = tx.events.filter(records.RecordAmended)[0]
    assert (amended.previousId, amended.recordId, amended.author) == (first, rid(500), lab.address)
    assert tx.events.filter(records.RecordAdded)[0].previousId == first

    old, new = records.getRecord(first), records.getRecord(rid(500))
    assert old.status == 2  # superseded, still readable
    assert new.status == 1 and new.scope == old.scope and new.patient == patient.address
    assert tx.events.filter(records.RecordAdded)[0].contentHash == new_hash

    # a superseded version cannot be amended again: the chain never forks
    with ape.reverts(records.RecordNotActive, recordId=first, status=2):
        records.amendRecord(first, rid(501), new_hash, CID, sender=patient)


def test_amend_unknown_record_reverts(network, records, patient):
    with ape.reverts(records.RecordNotFound, recordId=rid(9)):
        records.amendRecord(rid(9), rid(10), HASH, CID, sender=patient)


def test_stranger_cannot_amend(network, records, stranger, add_record):
    first = add_record()
    with ape.reverts(records.RecordUnauthorizedAuthor):
        records.amendRecord(first, rid(600), HASH, CID, sender=stranger)


def test_tombstone_is_patient_only_and_permanent(network, records, patient, stranger, add_record):
    record_id = add_record()
    with ape.reverts(records.RecordNotPatient, caller=stranger.address, recordId=record_id):
        records.tombstone(record_id, sender=stranger)
    tx = records.tombstone(record_id, sender=patient)
    assert tx.events.filter(records.RecordTombstoned)[0].recordId == record_id
    assert records.getRecord(record_id).status == 3
    with ape.reverts(records.RecordNotActive, recordId=record_id, status=3):
        records.tombstone(record_id, sender=patient)
    with ape.reverts(records.RecordNotActive, recordId=record_id, status=3):
        records.amendRecord(record_id, rid(700), HASH, CID, sender=patient)


def test_get_unknown_record_reverts(records):
    with ape.reverts(records.RecordNotFound, recordId=rid(42)):
        records.getRecord(rid(42))


def _batch(patient, size):
    leaves = [(rid(i + 1), patient.address, (i + 7).to_bytes(32, "big"), LAB_SCOPE) for i in range(size)]
    return leaves, MerkleTree([record_leaf(*leaf) for leaf in leaves])


def test_batch_anchor_verifies_valid_proofs_and_rejects_forged(network, records, hospital, patient):
    leaves, tree = _batch(patient, 5)
    tx = records.anchorBatch(tree.root, 5, HASH, CID, sender=hospital)
    event = tx.events.filter(records.BatchAnchored)[0]
    assert (event.root, event.author, event.leafCount) == (tree.root, hospital.address, 5)
    assert records.getBatch(tree.root).author == hospital.address

    for index, leaf in enumerate(leaves):
        assert records.batchLeaf(*leaf) == record_leaf(*leaf)
        assert records.verifyBatchedRecord(tree.root, tree.proof(index), *leaf)

    record_id, owner, content_hash, scope = leaves[2]
    forged_hash = b"\x66" * 32
    assert not records.verifyBatchedRecord(tree.root, tree.proof(2), record_id, owner, forged_hash, scope)
    assert not records.verifyBatchedRecord(tree.root, tree.proof(1), *leaves[2])
    assert not records.verifyBatchedRecord(b"\x01" * 32, tree.proof(2), *leaves[2])


def test_batch_rules(network, records, hospital, insurer, stranger, patient):
    _, tree = _batch(patient, 3)
    for outsider in (insurer, stranger):
        with ape.reverts(records.RecordUnauthorizedBatchAuthor, author=outsider.address):
            records.anchorBatch(tree.root, 3, HASH, CID, sender=outsider)
    with ape.reverts(records.RecordInvalidBatch, root=bytes(32)):
        records.anchorBatch(bytes(32), 3, HASH, CID, sender=hospital)
    with ape.reverts(records.RecordInvalidBatch, root=tree.root):
        records.anchorBatch(tree.root, 0, HASH, CID, sender=hospital)
    records.anchorBatch(tree.root, 3, HASH, CID, sender=hospital)
    with ape.reverts(records.RecordInvalidBatch, root=tree.root):
        records.anchorBatch(tree.root, 3, HASH, CID, sender=hospital)


def test_registry_and_consent_manager_point_at_each_other(records, consent, consortium):
    assert consent.address == records.consentManager()
    assert records.consortium() == consortium.address


def test_patient_tombstones_a_batched_record(network, records, consent, hospital, patient, stranger):
    leaves, tree = _batch(patient, 4)
    records.anchorBatch(tree.root, 4, HASH, CID, sender=hospital)
    record_id, owner, content_hash, scope = leaves[1]
    with ape.reverts(records.RecordInvalidProof, root=tree.root, recordId=record_id):
        records.tombstoneBatched(tree.root, tree.proof(1), record_id, content_hash, scope, sender=stranger)
    with ape.reverts(records.RecordInvalidProof, root=tree.root, recordId=record_id):
        records.tombstoneBatched(tree.root, tree.proof(1), record_id, b"\x01" * 32, scope, sender=patient)
    tx = records.tombstoneBatched(tree.root, tree.proof(1), record_id, content_hash, scope, sender=patient)
    assert tx.events.filter(records.RecordTombstoned)[0].recordId == record_id
    assert records.recordStatus(record_id) == 3
    with ape.reverts(records.RecordNotActive, recordId=record_id, status=3):
        records.tombstoneBatched(tree.root, tree.proof(1), record_id, content_hash, scope, sender=patient)
    with ape.reverts(consent.ConsentRecordErased, recordId=record_id):
        consent.requestBatchedAccess(tree.root, tree.proof(1), *leaves[1], sender=patient)
