import ape
import pytest

from ehr_client.chain.ids import batched_record_id_of, record_id_of
from tests.batches import make_batch
from tests.constants import ACCESS_AMEND, ACCESS_READ, CONDITION_SCOPE, LAB_SCOPE, MENTAL_SCOPE

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
    record_id = record_id_of(patient.address, rid(1))
    assert records.recordIdOf(patient, rid(1)) == record_id
    assert (event.recordId, event.patient, event.author) == (record_id, patient.address, patient.address)
    assert (event.contentHash, event.scope, event.cid, event.previousId) == (HASH, LAB_SCOPE, CID, bytes(32))
    record = records.getRecord(record_id)
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
    "content_hash, scope, cid",
    [(bytes(32), LAB_SCOPE, CID), (HASH, 0, CID), (HASH, LAB_SCOPE, b"")],
)
def test_add_rejects_empty_fields(network, records, patient, content_hash, scope, cid):
    with ape.reverts(records.RecordInvalidContent, recordId=record_id_of(patient.address, rid(1))):
        records.addRecord(rid(1), patient, content_hash, scope, cid, sender=patient)


def test_same_salt_twice_is_refused(network, records, patient):
    records.addRecord(rid(1), patient, HASH, LAB_SCOPE, CID, sender=patient)
    with ape.reverts(records.RecordIdUnavailable, recordId=record_id_of(patient.address, rid(1))):
        records.addRecord(rid(1), patient, HASH, LAB_SCOPE, CID, sender=patient)


def test_ids_are_bound_to_their_author(network, records, patient, hospital, lab, grant):
    """A salt another member used gives the caller a different id: nobody can claim someone's id."""
    grant(lab, scopes=LAB_SCOPE, access=ACCESS_AMEND)
    grant(hospital, scopes=LAB_SCOPE, access=ACCESS_AMEND)
    first = records.addRecord(rid(5), patient, HASH, LAB_SCOPE, CID, sender=lab).events.filter(records.RecordAdded)[0]
    second = records.addRecord(rid(5), patient, HASH, LAB_SCOPE, CID, sender=hospital).events.filter(
        records.RecordAdded)[0]
    assert first.recordId != second.recordId
    assert records.getRecord(first.recordId).patient == patient.address


def test_amendments_keep_history(network, records, patient, lab, grant, add_record):
    first = add_record()
    grant(lab, scopes=LAB_SCOPE, access=ACCESS_AMEND)
    new_hash = b"\xee" * 32
    tx = records.amendRecord(first, rid(500), new_hash, CID, sender=lab)
    amended = tx.events.filter(records.RecordAmended)[0]
    new_id = record_id_of(lab.address, rid(500))
    assert (amended.previousId, amended.recordId, amended.author) == (first, new_id, lab.address)
    assert tx.events.filter(records.RecordAdded)[0].previousId == first

    old, new = records.getRecord(first), records.getRecord(new_id)
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


def test_registry_and_consent_manager_point_at_each_other(records, consent, consortium):
    assert consent.address == records.consentManager()
    assert records.consortium() == consortium.address


# --- batches: one record model ------------------------------------------------------------------------


def test_batch_anchors_a_patients_records_and_proves_each_leaf(network, records, lab, patient, grant):
    grant(lab, scopes=LAB_SCOPE, access=ACCESS_AMEND)
    batch = make_batch(lab.address, patient.address, [LAB_SCOPE] * 5)
    tx = records.anchorBatch(*batch.anchor_args(), sender=lab)
    event = tx.events.filter(records.BatchAnchored)[0]
    assert (event.batchId, event.author, event.patient, event.leafCount) == (batch.batch_id, lab.address,
                                                                            patient.address, 5)
    for index in range(5):
        record_id, state = records.resolveBatchedRecord(batch.ref(index))
        assert record_id == batch.record_id(index) == records.batchedRecordIdOf(lab, batch.key, index)
        assert tuple(state) == (patient.address, LAB_SCOPE, 1)


@pytest.mark.parametrize("field, value", [
    ("contentHash", b"\x66" * 32), ("index", 1), ("scope", MENTAL_SCOPE), ("patient", "0x" + "11" * 20),
    ("leafCount", 8), ("root", b"\x01" * 32), ("cidHash", b"\x02" * 32), ("batchKey", b"\x03" * 32),
])
def test_a_forged_batched_record_is_refused(network, records, lab, patient, grant, field, value):
    grant(lab, scopes=LAB_SCOPE, access=ACCESS_AMEND)
    batch = make_batch(lab.address, patient.address, [LAB_SCOPE] * 5)
    records.anchorBatch(*batch.anchor_args(), sender=lab)
    with ape.reverts(records.RecordInvalidProof):
        records.resolveBatchedRecord(batch.ref(2, **{field: value}))


def test_a_proof_of_another_depth_is_refused(network, records, lab, patient, grant):
    """An inner node passed as a leaf (a shorter path) or a padded path cannot prove anything."""
    grant(lab, scopes=LAB_SCOPE, access=ACCESS_AMEND)
    batch = make_batch(lab.address, patient.address, [LAB_SCOPE] * 4)
    records.anchorBatch(*batch.anchor_args(), sender=lab)
    proof = batch.tree.proof(0)
    with ape.reverts(records.RecordInvalidProof):
        records.resolveBatchedRecord(batch.ref(0, proof=proof[1:]))
    with ape.reverts(records.RecordInvalidProof):
        records.resolveBatchedRecord(batch.ref(0, proof=proof + [bytes(32)]))


def test_batch_rules(network, records, hospital, lab, insurer, stranger, patient, grant):
    batch = make_batch(lab.address, patient.address, [LAB_SCOPE] * 3)
    # no amend grant from the patient: nobody anchors a batch of her records, member or not
    for outsider in (lab, insurer, stranger):
        with ape.reverts(records.RecordUnauthorizedAuthor):
            records.anchorBatch(*batch.anchor_args(), sender=outsider)
    grant(lab, scopes=LAB_SCOPE, access=ACCESS_AMEND)
    key, owner, scopes, root, count, mhash, mcid = batch.anchor_args()
    bid = batch.batch_id
    for args in [(key, owner, scopes, bytes(32), count, mhash, mcid), (key, owner, scopes, root, 0, mhash, mcid),
                 (key, owner, 0, root, count, mhash, mcid), (key, owner, scopes, root, count, bytes(32), mcid),
                 (key, owner, scopes, root, count, mhash, b""), (key, owner, scopes, root, 1025, mhash, mcid)]:
        with ape.reverts(records.RecordInvalidBatch, batchId=bid):
            records.anchorBatch(*args, sender=lab)
    records.anchorBatch(*batch.anchor_args(), sender=lab)
    with ape.reverts(records.RecordInvalidBatch, batchId=bid):
        records.anchorBatch(*batch.anchor_args(), sender=lab)
    # a batch's scopes are checked as a whole: a lab-only grant does not anchor mental health
    mixed = make_batch(lab.address, patient.address, [LAB_SCOPE, MENTAL_SCOPE])
    with ape.reverts(records.RecordUnauthorizedAuthor, author=lab.address, patient=patient.address,
                     scope=LAB_SCOPE | MENTAL_SCOPE):
        records.anchorBatch(*mixed.anchor_args(), sender=lab)


def test_patient_anchors_a_batch_of_her_own_records(network, records, patient):
    batch = make_batch(patient.address, patient.address, [LAB_SCOPE, MENTAL_SCOPE])
    records.anchorBatch(*batch.anchor_args(), sender=patient)
    assert records.resolveBatchedRecord(batch.ref(1))[1][1] == MENTAL_SCOPE


def test_batch_key_front_run_takes_nothing(network, records, lab, hospital, patient, grant):
    """Break 6: another member anchoring the same root and key first gets its own batch, not the author's."""
    grant(lab, scopes=LAB_SCOPE, access=ACCESS_AMEND)
    grant(hospital, scopes=LAB_SCOPE, access=ACCESS_AMEND)
    batch = make_batch(lab.address, patient.address, [LAB_SCOPE] * 3)
    records.anchorBatch(*batch.anchor_args(), sender=hospital)  # the front-runner copies the pending tx
    records.anchorBatch(*batch.anchor_args(), sender=lab)       # the author's anchor still lands
    assert records.resolveBatchedRecord(batch.ref(0))[0] == batch.record_id(0)


def test_squatting_a_batched_record_id_is_impossible(network, records, consent, lab, stranger, patient, grant):
    """Break 2: a funded stranger cannot claim a batched id; the patient can still erase the record."""
    grant(lab, scopes=LAB_SCOPE, access=ACCESS_AMEND)
    batch = make_batch(lab.address, patient.address, [LAB_SCOPE] * 2)
    records.anchorBatch(*batch.anchor_args(), sender=lab)
    target = batch.record_id(1)
    records.registerPatient(sender=stranger)
    # the squatter's addRecord lands under an id derived from the squatter, never the batched one
    squat = records.addRecord(target, stranger, HASH, LAB_SCOPE, CID, sender=stranger).events.filter(
        records.RecordAdded)[0]
    assert squat.recordId != target and records.recordStatus(target) == 0
    with ape.reverts(records.RecordNotPatient, caller=stranger.address, recordId=target):
        records.tombstoneBatchedRecord(batch.ref(1), sender=stranger)
    tx = records.tombstoneBatchedRecord(batch.ref(1), sender=patient)
    assert tx.events.filter(records.RecordTombstoned)[0].recordId == target
    assert records.recordStatus(target) == 3
    with ape.reverts(records.RecordNotActive, recordId=target, status=3):
        records.tombstoneBatchedRecord(batch.ref(1), sender=patient)
    with ape.reverts(consent.ConsentRecordErased, recordId=target):
        consent.requestBatchedAccess(batch.ref(1), sender=patient)


def test_a_batched_record_is_amended_like_any_other(network, records, lab, patient, grant):
    grant(lab, scopes=LAB_SCOPE, access=ACCESS_AMEND)
    batch = make_batch(lab.address, patient.address, [LAB_SCOPE] * 3)
    records.anchorBatch(*batch.anchor_args(), sender=lab)
    tx = records.amendBatchedRecord(batch.ref(0), rid(77), HASH, CID, sender=lab)
    added = tx.events.filter(records.RecordAdded)[0]
    assert added.previousId == batch.record_id(0) and added.patient == patient.address and added.scope == LAB_SCOPE
    assert records.recordStatus(batch.record_id(0)) == 2
    assert records.resolveBatchedRecord(batch.ref(0))[1][2] == 2
    with ape.reverts(records.RecordNotActive, recordId=batch.record_id(0), status=2):
        records.amendBatchedRecord(batch.ref(0), rid(78), HASH, CID, sender=lab)
    # the stored batched record is now also reachable by id alone
    with ape.reverts(records.RecordNotActive, recordId=batch.record_id(0), status=2):
        records.amendRecord(batch.record_id(0), rid(79), HASH, CID, sender=lab)


def test_amending_a_batched_record_needs_write_rights(network, records, lab, stranger, patient, grant):
    grant(lab, scopes=LAB_SCOPE, access=ACCESS_AMEND)
    batch = make_batch(lab.address, patient.address, [LAB_SCOPE])
    records.anchorBatch(*batch.anchor_args(), sender=lab)
    with ape.reverts(records.RecordUnauthorizedAuthor):
        records.amendBatchedRecord(batch.ref(0), rid(1), HASH, CID, sender=stranger)
    assert records.recordStatus(batch.record_id(0)) == 0  # a reverted amendment materialised nothing


def test_relisting_anothers_record_gives_a_new_id_in_the_lister_space(network, records, consent, lab, hospital,
                                                                       patient, grant):
    """Break 1 on chain: a provider with no grant cannot anchor a batch for the patient at all; with a
    lab-only grant it can list a blob as LAB only under its own ids, never the mental-health record's id."""
    grant(hospital, scopes=MENTAL_SCOPE, access=ACCESS_AMEND)
    mental = records.addRecord(rid(9), patient, HASH, MENTAL_SCOPE, CID, sender=hospital).events.filter(
        records.RecordAdded)[0].recordId
    relist = make_batch(lab.address, patient.address, [LAB_SCOPE], hashes=[HASH], cids=[CID])
    with ape.reverts(records.RecordUnauthorizedAuthor):
        records.anchorBatch(*relist.anchor_args(), sender=lab)
    grant(lab, scopes=LAB_SCOPE, access=ACCESS_AMEND)
    records.anchorBatch(*relist.anchor_args(), sender=lab)
    assert relist.record_id(0) != mental
    assert records.getRecord(mental).scope == MENTAL_SCOPE


# --- where a record's event is: a read by id asks 256 blocks, not the chain ---------------------------


def test_anchored_near_names_the_256_blocks_that_hold_each_versions_event(network, records, lab, patient, grant,
                                                                           chain):
    grant(lab, scopes=LAB_SCOPE, access=ACCESS_AMEND)
    first = records.addRecord(rid(40), patient, HASH, LAB_SCOPE, CID, sender=lab)
    chain.mine(700)
    amended = records.amendRecord(first.return_value, rid(41), b"\xce" * 32, CID, sender=lab)
    for tx, status in ((first, 2), (amended, 1)):  # superseded, then active
        record_id = tx.events.filter(records.RecordAdded)[0].recordId
        stored, start, end, batch_id = records.anchoredNear(record_id)
        assert stored == status and end - start == 255 and start <= tx.block_number <= end and batch_id == bytes(32)
        assert start % 256 == 0
    records.tombstone(amended.return_value, sender=patient)
    assert records.anchoredNear(amended.return_value)[0] == 3


def test_anchored_near_names_a_batched_records_batch_and_the_blocks_of_its_event(network, records, lab, patient,
                                                                                  grant, chain):
    """A batched record has no `RecordAdded` event: its id names its batch, and the batch's slot says
    which 256 blocks hold the `BatchAnchored` event, before and after the record is erased."""
    grant(lab, scopes=LAB_SCOPE, access=ACCESS_AMEND)
    batch = make_batch(lab.address, patient.address, [LAB_SCOPE] * 3)
    tx = records.anchorBatch(*batch.anchor_args(), sender=lab)
    assert tx.events.filter(records.BatchAnchored)[0].batchId == batch.batch_id
    chain.mine(700)
    for status in (0, 3):
        if status:
            records.tombstoneBatchedRecord(batch.ref(1), sender=patient)
        stored, start, end, batch_id = records.anchoredNear(batch.record_id(1))
        assert (stored, batch_id) == (status, batch.batch_id)
        assert end - start == 255 and start <= tx.block_number <= end and start % 256 == 0


def test_anchored_near_is_empty_for_an_id_that_names_no_batch(network, records, lab, patient, grant):
    grant(lab, scopes=LAB_SCOPE, access=ACCESS_AMEND)
    batch = make_batch(lab.address, patient.address, [LAB_SCOPE])
    records.anchorBatch(*batch.anchor_args(), sender=lab)
    assert tuple(records.anchoredNear(rid(999))) == (0, 0, 0, bytes(32))
    unanchored = make_batch(lab.address, patient.address, [LAB_SCOPE])
    assert tuple(records.anchoredNear(unanchored.record_id(0))) == (0, 0, 0, bytes(32))


def test_a_batched_id_starts_with_its_batch_id_then_its_index(network, records, lab):
    key = rid(5)
    batch_id = records.batchIdOf(lab, key)
    assert batch_id[12:] == bytes(20)
    for index in (0, 1, 1023):
        record_id = records.batchedRecordIdOf(lab, key, index)
        assert record_id[:12] == batch_id[:12] and int.from_bytes(record_id[12:16], "big") == index
        assert record_id == batched_record_id_of(lab.address, key, index)
