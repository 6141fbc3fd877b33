"""Garbage collection removes only what nothing references: a crash's orphan, never a record,
a pending or acknowledged write, a batch, a manifest or a key share."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ehr_client.batch import BatchItem, BatchWriter
from ehr_client.batch.gc import collect
from ehr_client.client import EHRClient
from ehr_client.client.write import prepare
from ehr_client.errors import IntegrityError
from ehr_client.journal import PendingWrite
from ehr_client.package import RecordBinding
from ehr_client.chain.ids import record_id_of
from ehr_client.records import canonicalize
from ehr_client.storage import cid_to_bytes
from tests.batch.conftest import observation
from tests.constants import DAY

OLD = 2 * DAY


def _age(store, cids, seconds: float) -> None:
    for path in {store.location(cid)[0] for cid in cids}:  # a pack ages once for all its blobs
        os.utime(path, (path.stat().st_atime - seconds, path.stat().st_mtime - seconds))


def test_only_unreferenced_old_blobs_are_collected(people: dict[str, EHRClient], writer_lab: EHRClient, store,
                                                    tmp_path: Path) -> None:
    patient, doctor = people["patient"], people["doctor"]
    single = writer_lab.add_record(patient.address, observation(1))
    batch = BatchWriter(writer_lab).write([BatchItem(patient.address, observation(2 + i)) for i in range(2)])
    share = patient.grant(doctor.address, int(single.scope), expires_at=patient.chain.now() + DAY).key_share
    # a write that crashed after storing, before its journal line: an orphan
    orphan = store.put(b"ciphertext of a write that crashed before its journal line")
    # a write stored and journaled but not anchored yet (pending): protected
    prepared = prepare(observation(9))
    salt = os.urandom(32)
    rid = record_id_of(writer_lab.address, salt)
    pending_cid, pending_hash = writer_lab.writer.seal(
        RecordBinding.of(rid, 1, patient.address, prepared.scope, writer_lab.address), prepared.media_type,
        prepared.source())
    writer_lab.journal.put("ab" * 32, PendingWrite("0x" + rid.hex(), patient.address, pending_cid,
                                                   "0x" + pending_hash.hex(), prepared.scope, None, "0x" + salt.hex()))
    every = [cid for cid, _ in store.blobs()]
    _age(store, every, OLD)
    young = store.put(b"a blob stored a moment ago, its journal line not yet written")

    states = [writer_lab.state_dir, patient.state_dir]
    dry = collect(patient.chain, store, states, grace=DAY)
    assert dry.garbage == (orphan,) and dry.removed == 0 and dry.too_young == 1
    assert store.has(orphan)

    done = collect(patient.chain, store, states, grace=DAY, delete=True)
    assert done.removed == 1 and not store.has(orphan) and store.has(young) and store.has(pending_cid)
    assert share is not None and store.has(share)
    assert doctor.read_record(single.record_id, key_share=share).data == canonicalize(observation(1))
    assert patient.read_record(batch.record_ids[1]).data == canonicalize(observation(3))
    assert collect(patient.chain, store, states, grace=DAY).garbage == ()


def test_a_damaged_manifest_of_an_anchored_batch_stops_gc_before_it_deletes_its_records(
        people: dict[str, EHRClient], writer_lab: EHRClient, store, tmp_path: Path) -> None:
    """The batch's pack loses its last byte (the manifest, which each batch appends last): gc cannot
    tell which blobs are the batch's records, so it deletes nothing and says what to restore."""
    patient = people["patient"]
    summary = BatchWriter(writer_lab).write([BatchItem(patient.address, observation(40 + i)) for i in range(2)])
    manifest = summary.batches[0].manifest_cid
    pack, offset, length = store.location(manifest)
    whole = pack.read_bytes()
    assert offset + length == len(whole)
    with open(pack, "r+b") as f:
        f.truncate(len(whole) - 1)
    _age(store, [cid for cid, _ in store.blobs()], OLD)
    states = [writer_lab.state_dir, patient.state_dir]
    before = sorted(str(cid) for cid, _ in store.blobs())

    with pytest.raises(IntegrityError, match=f"{manifest}.*garbage collection stopped.*Restore"):
        collect(patient.chain, store, states, grace=DAY, delete=True)

    assert sorted(str(cid) for cid, _ in store.blobs()) == before
    pack.write_bytes(whole)  # restored from a replica
    assert collect(patient.chain, store, states, grace=DAY, delete=True).removed == 0
    assert patient.read_record(summary.record_ids[1]).data == canonicalize(observation(41))


def test_another_records_pointer_does_not_keep_an_erased_records_package(
        people: dict[str, EHRClient], writer_lab: EHRClient, store) -> None:
    """The erasure died after its tombstone, before it removed the package. Anyone may anchor any CID:
    a stranger adds a record of their own pointing at that package, to keep it. The package's own
    binding names the erased record, so gc collects it all the same."""
    patient, stranger = people["patient"], people["stranger"]
    written = writer_lab.add_record(patient.address, observation(50))
    info = patient.get_record(written.record_id)
    patient.tombstone(info)  # the erasure dies here, before its unpin
    stranger.register_patient()
    pointer = stranger.chain.records.functions.addRecord(
        os.urandom(32), stranger.address, info.content_hash, int(info.scope), cid_to_bytes(info.cid))
    stranger.chain.transact(stranger.identity.account, pointer, action="add a record")
    _age(store, [info.cid], OLD)

    report = collect(patient.chain, store, [writer_lab.state_dir, patient.state_dir], grace=DAY, delete=True)

    assert info.cid in report.erased and not store.has(info.cid)
