"""Batched records read through the one read pipeline: located, verified, refused or read like any record."""

import dataclasses
import hashlib
import os

import pytest

from ehr_client.batch import BatchItem, BatchWriter
from ehr_client.chain.merkle import PositionalTree
from ehr_client.client.manifest import BatchLeaf, BatchManifest
from ehr_client.errors import AccessDenied, IntegrityError, KeyNotFound, RecordErased
from ehr_client.records import canonicalize
from ehr_client.storage import cid_to_bytes
from tests.batch.conftest import CONDITIONS, LAB, condition, observation
from tests.blob_files import overwrite_blob
from tests.constants import DAY


def _write(people, lab, n, *, batch_size=256, make=observation, first=0):
    patient = people["patient"]
    ids = BatchWriter(lab, batch_size=batch_size).write([BatchItem(patient.address, make(first + i))
                                                          for i in range(n)])
    return [patient.get_record(r) for r in ids.record_ids]


def _access_requests(client):
    return [e for e in client.audit_trail(client.address) if e.event == "AccessRequested"]


def test_grantee_reads_batched_records_with_the_key_share_of_the_grant(people, writer_lab):
    patient, doctor = people["patient"], people["doctor"]
    located = _write(people, writer_lab, 3)
    grant = patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + DAY)
    assert grant.shared_records == 3

    assert doctor.read_record(located[1].record_id, key_share=grant.key_share).data == canonicalize(observation(1))
    with pytest.raises(KeyNotFound, match="key share"):
        doctor.read_record(located[1].record_id)
    assert [e.actor for e in _access_requests(patient)] == [doctor.address, doctor.address]


@pytest.mark.parametrize("forgery", ["content hash", "proof of another leaf", "scope", "index"])
def test_forged_leaf_or_wrong_proof_is_an_integrity_error_and_nothing_is_read(people, writer_lab, forgery):
    patient = people["patient"]
    located = _write(people, writer_lab, 4)
    record, other = located[1], located[2]
    proof = record.batch
    forged = {
        "content hash": dataclasses.replace(record, content_hash=other.content_hash, cid=other.cid,
                                            batch=dataclasses.replace(proof, content_hash=other.content_hash)),
        "proof of another leaf": dataclasses.replace(record, batch=dataclasses.replace(proof, proof=other.batch.proof)),
        "scope": dataclasses.replace(record, scope=CONDITIONS, batch=dataclasses.replace(proof, scope=CONDITIONS)),
        "index": dataclasses.replace(record, batch=dataclasses.replace(proof, index=2)),
    }[forgery]
    with pytest.raises(IntegrityError, match="Merkle proof"):
        patient.read_record(forged)
    assert _access_requests(patient) == []


def test_leaf_proven_against_a_root_never_anchored_is_refused_by_the_chain(people, writer_lab):
    patient = people["patient"]
    record = _write(people, writer_lab, 2)[0]
    proof = record.batch
    leaf = BatchLeaf(record.scope, record.content_hash, record.cid).leaf(0)
    tree = PositionalTree([leaf, b"\x11" * 32])
    forged = dataclasses.replace(record, batch=dataclasses.replace(proof, root=tree.root, proof=tuple(tree.proof(0))))
    with pytest.raises(IntegrityError, match="does not place this record"):
        patient.read_record(forged)
    assert _access_requests(patient) == []


def test_blob_swapped_for_another_record_is_an_integrity_error(people, writer_lab, store):
    patient = people["patient"]
    located = _write(people, writer_lab, 2)
    overwrite_blob(store, located[0].cid, store.get(located[1].cid))
    with pytest.raises(IntegrityError):
        patient.read_record(located[0].record_id)


def _anchor_directly(lab, patient, manifest: BatchManifest, root: bytes, *, manifest_hash: bytes | None = None):
    """Anchor as a member with a grant would without the client's checks: any root, any manifest."""
    data = manifest.to_bytes()
    cid = lab.store.put(data)
    digest = manifest_hash or hashlib.sha256(data).digest()
    fn = lab.chain.records.functions.anchorBatch(manifest.batch_key, patient, manifest.scopes, root,
                                                 len(manifest.leaves), digest, cid_to_bytes(cid))
    return lab.chain.transact(lab.identity.account, fn, action="anchor batch"), cid


@pytest.mark.parametrize("tampering", ["sha256 differs from the chain", "forged leaf", "bytes altered in the store"])
def test_tampered_manifest_is_skipped_and_reported_and_breaks_nothing_else(people, writer_lab, store, tampering):
    patient = people["patient"]
    good = _write(people, writer_lab, 3)
    leaves = [BatchLeaf(r.scope, r.content_hash, r.cid) for r in good][::-1]
    manifest = BatchManifest(writer_lab.address, patient.address, os.urandom(32), tuple(leaves))
    if tampering == "sha256 differs from the chain":
        _anchor_directly(writer_lab, patient.address, manifest, manifest.root,
                         manifest_hash=hashlib.sha256(b"other").digest())
        expected = "does not match the sha256"
    elif tampering == "forged leaf":
        forged = dataclasses.replace(leaves[0], content_hash=leaves[1].content_hash, cid=leaves[1].cid)
        _anchor_directly(writer_lab, patient.address, dataclasses.replace(manifest, leaves=(forged, *leaves[1:])),
                         manifest.root)
        expected = "do not hash to the anchored Merkle root"
    else:
        _, cid = _anchor_directly(writer_lab, patient.address, manifest, manifest.root)
        overwrite_blob(store, cid, store.get(cid).replace(b'"scope":2', b'"scope":8', 1))
        expected = "does not hash to its CID"
    report = patient.list_records_report(patient.address)
    assert [r.record_id for r in report.records] == [r.record_id for r in good]
    assert len(report.skipped) == 1 and expected in report.skipped[0].reason
    assert len(patient.read_history(patient.address)) == 3


@pytest.mark.parametrize("situation", ["never granted", "revoked", "other scope"])
def test_reader_without_valid_grant_is_denied_and_nothing_is_fetched(people, writer_lab, situation):
    patient, doctor = people["patient"], people["doctor"]
    located = _write(people, writer_lab, 1)
    if situation != "never granted":
        patient.grant(doctor.address, CONDITIONS if situation == "other scope" else LAB,
                      expires_at=patient.chain.now() + DAY, share_keys=False)
    if situation == "revoked":
        patient.revoke(doctor.address)
    with pytest.raises(AccessDenied, match="may not read"):
        doctor.read_record(located[0].record_id)
    assert _access_requests(patient) == []


def test_erased_batched_record_fails_to_read_and_is_left_out_of_history(people, writer_lab):
    patient = people["patient"]
    located = _write(people, writer_lab, 3)
    patient.tombstone(located[1])
    with pytest.raises(RecordErased):
        patient.read_record(located[1].record_id)
    history = patient.read_history(patient.address)
    assert [h.info.record_id for h in history] == [located[0].record_id, located[2].record_id]


def test_history_holds_single_and_batched_records_and_honours_scopes(people, writer_lab):
    patient, doctor = people["patient"], people["doctor"]
    single = writer_lab.add_record(patient.address, observation(100))
    _write(people, writer_lab, 2)
    _write(people, writer_lab, 1, make=condition)
    grant = patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + DAY)

    mine = patient.read_history(patient.address)
    assert [h.info.record_id for h in mine][0] == single.record_id and len(mine) == 4
    theirs = doctor.read_history(patient.address, scopes=LAB, key_share=grant.key_share)
    assert [h.data for h in theirs] == [canonicalize(observation(i)) for i in (100, 0, 1)]
    with pytest.raises(AccessDenied):
        doctor.read_history(patient.address, key_share=grant.key_share)


def test_reading_many_records_checks_them_all_in_one_round_trip(people, writer_lab, counted_client, rpc_counter):
    patient = counted_client("patient")
    located = _write(people, writer_lab, 5)
    rpc_counter.trips.clear()

    results = patient.read_records(located)

    assert [r.data for r in results] == [canonicalize(observation(i)) for i in range(5)]
    checks, sends, *polls = rpc_counter.trips
    # every check in one batch: canRead once for the (patient, scope) pair, then the 5 gas
    # estimates (the chain re-verifies each proof), the nonce, the latest block, the tip and whether
    # the node mines on arrival
    assert len(checks) == 1 + 5 + 4
    # Anvil mines on arrival: the five sends wait for their blocks and answer with the receipts
    assert sends == ["eth_sendRawTransactionSync"] * 5
    assert not polls


def test_history_read_costs_the_same_round_trips_for_3_or_15_records(people, writer_lab, counted_client,
                                                                    rpc_counter):
    patient = counted_client("patient")
    counts = []
    for n, expected in ((3, 4), (12, 17)):
        writer_lab.add_record(patient.address, observation(1000 + n))
        _write(people, writer_lab, n, first=100 * n)
        rpc_counter.trips.clear()
        assert len(patient.read_history(patient.address)) == expected
        polls = {"eth_getTransactionReceipt", "eth_getTransactionCount"}
        counts.append(len([trip for trip in rpc_counter.trips if not set(trip) <= polls]))
    # not counting receipt polls (as many as the node needs to mine): the same round trips whatever the size
    assert counts[0] == counts[1] <= 10, rpc_counter.trips
