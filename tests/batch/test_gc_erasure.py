"""gc finishes what an erasure killed after its tombstone left: the erased ciphertext and key shares
that open only erased records go; bytes a live record also points at, and shares a grantee still
needs for live records, stay (the latter reported as an unfinished erasure)."""

from __future__ import annotations

from ehr_client.batch import BatchItem, BatchWriter
from ehr_client.batch.gc import collect
from ehr_client.chain.ids import record_id_of
from ehr_client.client import EHRClient
from ehr_client.journal import PendingWrite
from ehr_client.records import Scope, canonicalize
from ehr_client.sharing.audited import AuditedSharing
from ehr_client.sharing.remote import CustodianSet
from ehr_client.storage import LocalStore, cid_to_bytes
from tests.batch.conftest import observation
from tests.constants import DAY

LAB = int(Scope.LAB)


def _erase_killed_after_tombstone(patient: EHRClient, record_id: bytes) -> None:
    patient.tombstone(patient.get_record(record_id))


def test_gc_removes_an_erased_record_s_ciphertext_and_a_share_of_only_erased_records(
        people: dict[str, EHRClient], store: LocalStore) -> None:
    patient, doctor = people["patient"], people["doctor"]
    written = patient.add_record(patient.address, observation(1))
    share = patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + DAY).key_share
    assert share is not None and share in patient.journal.shares()
    _erase_killed_after_tombstone(patient, written.record_id)

    report = collect(patient.chain, store, [patient.state_dir, doctor.state_dir], grace=0, delete=True)

    assert set(report.erased) == {written.cid, share} and set(report.garbage) == {written.cid, share}
    assert not store.has(written.cid) and not store.has(share) and report.unfinished_erasures == ()


def test_gc_keeps_erased_bytes_a_live_record_points_at(people: dict[str, EHRClient], writer_lab: EHRClient,
                                                       store: LocalStore) -> None:
    patient = people["patient"]
    original = writer_lab.add_record(patient.address, observation(1))
    salt = b"\x5a" * 32  # the lab lists the same CID under a second id, which the patient erases
    writer_lab.chain.transact(writer_lab.identity.account, writer_lab.chain.records.functions.addRecord(
        salt, patient.address, original.content_hash, LAB, cid_to_bytes(original.cid)), action="re-list")
    _erase_killed_after_tombstone(patient, record_id_of(writer_lab.address, salt))

    report = collect(patient.chain, store, [patient.state_dir, writer_lab.state_dir], grace=0, delete=True)

    assert original.cid not in report.garbage and store.has(original.cid)
    assert patient.read_record(original.record_id).data == canonicalize(observation(1))


def test_gc_collects_an_erased_batched_record_s_leaf_and_keeps_its_batch(people: dict[str, EHRClient],
                                                                         writer_lab: EHRClient,
                                                                         store: LocalStore) -> None:
    patient = people["patient"]
    summary = BatchWriter(writer_lab).write([BatchItem(patient.address, observation(2 + i)) for i in range(2)])
    (batch,) = summary.batches
    erased, kept = batch.records
    _erase_killed_after_tombstone(patient, erased.record_id)

    report = collect(patient.chain, store, [patient.state_dir, writer_lab.state_dir], grace=0, delete=True)

    assert report.erased == (erased.cid,) and not store.has(erased.cid)
    assert store.has(kept.cid) and store.has(batch.manifest_cid)
    assert patient.read_record(kept.record_id).data == canonicalize(observation(3))


def test_gc_keeps_a_share_a_grantee_needs_for_live_records_and_reports_the_erasure_unfinished(
        people: dict[str, EHRClient], store: LocalStore) -> None:
    patient, doctor = people["patient"], people["doctor"]
    erased = patient.add_record(patient.address, observation(1))
    live = patient.add_record(patient.address, observation(2))
    share = patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + DAY).key_share
    assert share is not None
    _erase_killed_after_tombstone(patient, erased.record_id)

    report = collect(patient.chain, store, [patient.state_dir], grace=0, delete=True)

    assert report.unfinished_erasures == (share,) and store.has(share) and report.erased == (erased.cid,)
    assert doctor.read_record(live.record_id, key_share=share).data == canonicalize(observation(2))

    erasure = AuditedSharing(patient, CustodianSet.connect(patient.chain, [])).erase(erased.record_id)  # the rerun
    new = erasure.reissued_shares[0].new
    assert new is not None
    after = collect(patient.chain, store, [patient.state_dir], grace=0, delete=True)

    assert after.unfinished_erasures == () and after.garbage == () and not store.has(share) and store.has(new)
    assert doctor.read_record(live.record_id, key_share=new).data == canonicalize(observation(2))


def _pending(record_id: bytes, patient: str, cid: str) -> PendingWrite:
    return PendingWrite("0x" + record_id.hex(), patient, cid, "0x" + "11" * 32, LAB, None, "0x" + "22" * 32)


def test_gc_keeps_erased_bytes_an_unanchored_write_names_until_it_is_gone(people: dict[str, EHRClient],
                                                                          writer_lab: EHRClient,
                                                                          store: LocalStore) -> None:
    patient = people["patient"]
    erased = writer_lab.add_record(patient.address, observation(1))
    _erase_killed_after_tombstone(patient, erased.record_id)
    # The erased write's own pending line, left by a crash after it was mined: no longer a reference.
    writer_lab.journal.put("cd" * 32, _pending(erased.record_id, patient.address, erased.cid))
    # A write not anchored yet that names the same bytes: it protects them.
    unanchored = record_id_of(writer_lab.address, b"\x77" * 32)
    writer_lab.journal.put("ab" * 32, _pending(unanchored, patient.address, erased.cid))
    states = [patient.state_dir, writer_lab.state_dir]

    kept = collect(patient.chain, store, states, grace=0, delete=True)

    assert erased.cid not in kept.garbage and store.has(erased.cid)

    writer_lab.journal.done("ab" * 32)
    done = collect(patient.chain, store, states, grace=0, delete=True)

    assert done.erased == (erased.cid,) and not store.has(erased.cid)
