import dataclasses
import hashlib

import pytest

from ehr_client._batch_manifest import BatchLeaf, BatchManifest
from ehr_client.batch import (
    BatchItem,
    BatchWriter,
    list_batched_records,
    read_batched_record,
    read_batched_records,
    read_history,
    share_keys,
)
from ehr_client.chain.merkle import MerkleTree
from ehr_client.errors import AccessDenied, IntegrityError, KeyNotFound, RecordErased
from ehr_client.records import canonicalize
from ehr_client.storage import cid_to_bytes
from tests.batch.conftest import CONDITIONS, LAB, condition, observation
from tests.constants import DAY


def _write(people, lab, n, *, batch_size=256, make=observation):
    patient = people["patient"]
    BatchWriter(lab, batch_size=batch_size).write([BatchItem(patient.address, make(i)) for i in range(n)])
    return list_batched_records(patient, patient.address)


def _access_requests(client):
    return [e for e in client.audit_trail(client.address) if e.event == "AccessRequested"]


def test_grantee_reads_batched_records_with_the_extended_key_share(people, writer_lab):
    patient, doctor = people["patient"], people["doctor"]
    located = _write(people, writer_lab, 3)
    patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + DAY, share_keys=False)
    share, count = share_keys(patient, doctor.address, LAB)
    assert count == 3

    assert read_batched_record(doctor, located[1], key_share=share).data == canonicalize(observation(1))
    with pytest.raises(KeyNotFound, match="key share"):
        read_batched_record(doctor, located[1])
    assert [e.actor for e in _access_requests(patient)] == [doctor.address, doctor.address]


@pytest.mark.parametrize("forgery", ["content hash", "proof of another leaf", "patient", "scope", "record id"])
def test_forged_leaf_or_wrong_proof_is_an_integrity_error_and_nothing_is_read(people, writer_lab, forgery):
    patient = people["patient"]
    located = _write(people, writer_lab, 4)
    record = located[1]
    forged = {
        "content hash": dataclasses.replace(record, content_hash=located[2].content_hash, cid=located[2].cid),
        "proof of another leaf": dataclasses.replace(record, proof=located[2].proof),
        "patient": dataclasses.replace(record, patient=people["doctor"].address),
        "scope": dataclasses.replace(record, scope=CONDITIONS),
        "record id": dataclasses.replace(record, record_id=located[2].record_id),
    }[forgery]
    with pytest.raises(IntegrityError, match="Merkle proof"):
        read_batched_record(patient, forged)
    assert _access_requests(patient) == []


def test_leaf_proven_against_a_root_never_anchored_is_an_integrity_error(people, writer_lab):
    patient = people["patient"]
    record = _write(people, writer_lab, 2)[0]
    tree = MerkleTree([record.leaf, b"\x11" * 32])
    forged = dataclasses.replace(record, root=tree.root, proof=tuple(tree.proof(0)))
    with pytest.raises(IntegrityError, match="not anchored"):
        read_batched_record(patient, forged)
    assert _access_requests(patient) == []


def test_blob_swapped_for_another_record_is_an_integrity_error(people, writer_lab, store):
    patient = people["patient"]
    located = _write(people, writer_lab, 2)
    target = store.path_for(located[0].cid)
    target.chmod(0o600)
    target.write_bytes(store.get(located[1].cid))
    with pytest.raises(IntegrityError):
        read_batched_record(patient, located[0])


def _anchor_directly(lab, manifest: BatchManifest, root: bytes, *, manifest_hash: bytes | None = None):
    """Anchor as a member would without the client's checks: any root, any manifest."""
    data = manifest.to_bytes()
    cid = lab.store.put(data)
    digest = manifest_hash or hashlib.sha256(data).digest()
    fn = lab.chain.records.functions.anchorBatch(root, len(manifest.leaves), digest, cid_to_bytes(cid))
    return lab.chain.transact(lab.identity.account, fn, action="anchor batch"), cid


def _leaves(located):
    return [BatchLeaf(r.record_id, r.patient, r.content_hash, r.scope, r.cid) for r in located]


@pytest.mark.parametrize("tampering", ["sha256 differs from the chain", "forged leaf", "bytes altered in the store"])
def test_tampered_manifest_is_an_integrity_error(people, writer_lab, store, tampering):
    patient = people["patient"]
    leaves = _leaves(_write(people, writer_lab, 3))[::-1]  # same records, new order: a root not yet anchored
    manifest = BatchManifest(writer_lab.address, tuple(leaves))
    if tampering == "sha256 differs from the chain":
        _anchor_directly(writer_lab, manifest, manifest.root, manifest_hash=hashlib.sha256(b"other").digest())
        expected = "does not match the sha256"
    elif tampering == "forged leaf":
        forged = dataclasses.replace(leaves[0], content_hash=leaves[1].content_hash, cid=leaves[1].cid)
        _anchor_directly(writer_lab, BatchManifest(writer_lab.address, (forged, *leaves[1:])), manifest.root)
        expected = "do not hash to its anchored Merkle root"
    else:
        _, cid = _anchor_directly(writer_lab, manifest, manifest.root)
        path = store.path_for(cid)
        path.chmod(0o600)
        path.write_bytes(path.read_bytes().replace(b'"scope":2', b'"scope":8', 1))
        expected = "does not hash to its CID"
    with pytest.raises(IntegrityError, match=expected):
        list_batched_records(patient, patient.address)
    with pytest.raises(IntegrityError):
        read_history(patient, patient.address)
    assert _access_requests(patient) == []


def test_batch_by_an_author_without_amend_grant_at_anchoring_is_refused_even_after_a_later_grant(people, store):
    patient, lab, hospital = people["patient"], people["lab"], people["hospital"]
    patient.grant(hospital.address, LAB, access="amend", expires_at=patient.chain.now() + DAY, share_keys=False)
    located = _write(people, hospital, 3)
    # the lab (an active member, so the contract accepts any root from it) anchors the same leaves,
    # in another order, without an amend grant from the patient
    manifest = BatchManifest(lab.address, tuple(_leaves(located)[::-1]))
    _anchor_directly(lab, manifest, manifest.root)
    patient.grant(lab.address, LAB, access="amend", expires_at=patient.chain.now() + DAY, share_keys=False)

    by_lab = [r for r in list_batched_records(patient, patient.address) if r.author == lab.address]
    assert len(by_lab) == 3
    with pytest.raises(IntegrityError, match="was not allowed to write"):
        read_batched_record(patient, by_lab[0])
    assert read_batched_record(patient, located[0]).data == canonicalize(observation(0))


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
        read_batched_record(doctor, located[0])
    assert _access_requests(patient) == []


def test_erased_batched_record_fails_to_read_and_is_left_out_of_history(people, writer_lab):
    patient = people["patient"]
    located = _write(people, writer_lab, 3)
    r = located[1]
    patient.chain.transact(patient.identity.account, patient.chain.records.functions.tombstoneBatched(
        r.root, list(r.proof), r.record_id, r.content_hash, r.scope), action="erase")
    with pytest.raises(RecordErased):
        read_batched_record(patient, r)
    history = read_history(patient, patient.address)
    assert [h.info.record_id for h in history] == [located[0].record_id, located[2].record_id]


def test_history_holds_single_and_batched_records_and_honours_scopes(people, writer_lab):
    patient, doctor = people["patient"], people["doctor"]
    single = writer_lab.add_record(patient.address, observation(100))
    _write(people, writer_lab, 2)
    _write(people, writer_lab, 1, make=condition)
    patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + DAY, share_keys=False)
    share, _ = share_keys(patient, doctor.address, LAB)

    mine = read_history(patient, patient.address)
    assert [h.info.record_id for h in mine][0] == single.record_id and len(mine) == 4
    theirs = read_history(doctor, patient.address, scopes=LAB, key_share=share)
    assert [h.data for h in theirs] == [canonicalize(observation(i)) for i in (100, 0, 1)]
    with pytest.raises(AccessDenied):
        read_history(doctor, patient.address, key_share=share)


def test_reading_many_batched_records_checks_them_all_in_one_round_trip(people, writer_lab, counted_client,
                                                                     rpc_counter):
    patient = counted_client("patient")
    located = _write(people, writer_lab, 5)
    rpc_counter.trips.clear()

    results = read_batched_records(patient, located)

    assert [r.data for r in results] == [canonicalize(observation(i)) for i in range(5)]
    checks, sends, *receipts = rpc_counter.trips
    # every check in one batch: per record its status and its proof on chain; once for the batch
    # (getBatch, its BatchAnchored log, the author's canAmend at that block) and once for canRead;
    # then the 5 gas estimates, the nonce, the latest block and the tip
    assert len(checks) == 5 * 2 + 4 + 5 + 3 and "eth_getLogs" in checks
    assert sends == ["eth_sendRawTransaction"] * 5
    assert receipts and all(set(trip) == {"eth_getTransactionReceipt"} for trip in receipts)


def test_history_read_costs_the_same_round_trips_for_3_or_15_records(people, writer_lab, counted_client,
                                                                    rpc_counter):
    patient = counted_client("patient")
    counts = []
    for n, expected in ((3, 4), (12, 17)):
        writer_lab.add_record(patient.address, observation(1000 + n))
        _write(people, writer_lab, n)
        rpc_counter.trips.clear()
        assert len(read_history(patient, patient.address)) == expected
        counts.append(len([trip for trip in rpc_counter.trips if trip != ["eth_getTransactionReceipt"] * len(trip)]))
    # not counting receipt polls (as many as the node needs to mine): the same round trips whatever the size
    assert counts[0] == counts[1] <= 10, rpc_counter.trips
