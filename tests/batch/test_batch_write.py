import json

import pytest
import umbral_pre

from ehr_client.batch import BatchBusy, BatchItem, BatchWriter
from ehr_client.client import EHRClient, Identity
from ehr_client.errors import AccessDenied, InvalidRecord, KeyNotFound
from ehr_client.package import parse_header
from ehr_client.records import canonicalize
from tests.batch.conftest import CONDITIONS, LAB, condition, observation
from tests.blob_files import blob_cids, store_files
from tests.constants import DAY


def test_batch_write_sends_one_anchor_per_batch_and_every_record_reads_back(people, writer_lab, store):
    patient = people["patient"]
    items = [BatchItem(patient.address, observation(i)) for i in range(9)] + [BatchItem(patient.address, condition(0))]
    summary = BatchWriter(writer_lab, batch_size=4).write(items)

    # one batch per patient and scope: 4 + 4 + 1 lab results, then the condition on its own
    assert [len(b.records) for b in summary.batches] == [4, 4, 1, 1]
    assert len({b.tx.tx_hash for b in summary.batches}) == 4
    assert (summary.stored, summary.reused, summary.skipped) == (10, 0, 0)
    assert [b.records[0].scope for b in summary.batches] == [LAB, LAB, LAB, CONDITIONS]
    assert len(blob_cids(store)) == 10 + 4  # one blob per record, one manifest per batch
    located = patient.list_records(patient.address)
    assert sorted(r.record_id for r in located) == sorted(summary.record_ids)
    assert {r.author for r in located} == {writer_lab.address} and all(r.batched for r in located)
    for i in (0, 5, 8):
        assert patient.read_record(summary.record_ids[i]).data == canonicalize(observation(i))
    assert writer_lab.read_record(summary.record_ids[9]).resource()["code"]["text"] == "condition 0"


def test_manifest_lists_every_leaf_and_holds_no_health_data(people, writer_lab, store):
    patient = people["patient"]
    summary = BatchWriter(writer_lab).write([BatchItem(patient.address, observation(i)) for i in range(3)])
    manifest = json.loads(store.get(summary.batches[0].manifest_cid))
    assert manifest["format"] == "ehr-batch-manifest/2" and manifest["author"] == writer_lab.address
    assert manifest["patient"] == patient.address and manifest["scopes"] == LAB
    assert [leaf["contentHash"] for leaf in manifest["leaves"]] == [
        "0x" + r.content_hash.hex() for r in summary.batches[0].records]
    assert set(manifest["leaves"][0]) == {"contentHash", "scope", "cid"}
    for blob in store_files(store):  # the packs and their index too
        assert b"Glucose" not in blob.read_bytes() and b"fasting" not in blob.read_bytes()


def test_identical_records_in_one_write_are_both_kept(people, writer_lab):
    patient = people["patient"]
    summary = BatchWriter(writer_lab).write([BatchItem(patient.address, observation(1))] * 2)
    assert len(set(summary.record_ids)) == 2 and summary.stored == 2


def test_insurer_cannot_batch_write_and_nothing_is_stored(people, store):
    patient, insurer = people["patient"], people["insurer"]
    with pytest.raises(AccessDenied, match="may not"):
        BatchWriter(insurer).write([BatchItem(patient.address, observation(0))])
    assert blob_cids(store) == []


@pytest.mark.parametrize("grant", ["none", "read only", "other scope"])
def test_lab_without_amend_grant_for_the_scope_is_refused_before_storing(people, store, grant):
    patient, lab = people["patient"], people["lab"]
    if grant != "none":
        patient.grant(lab.address, CONDITIONS if grant == "other scope" else LAB,
                      access="read" if grant == "read only" else "amend", expires_at=patient.chain.now() + DAY,
                      share_keys=False)
    writer = BatchWriter(lab)
    with pytest.raises(AccessDenied, match="nothing of this batch was stored"):
        writer.write([BatchItem(patient.address, observation(0))])
    assert blob_cids(store) == []
    assert writer.pending() == []


def test_patient_batches_her_own_records(people, store):
    patient = people["patient"]
    summary = BatchWriter(patient).write([BatchItem(patient.address, observation(i)) for i in range(2)])
    assert patient.read_record(summary.record_ids[1]).data == canonicalize(observation(1))


def test_patient_cannot_batch_write_for_another_patient(people, ids, store):
    patient, other = people["patient"], ids["other_patient"]
    people["patient"].chain.transact(other.account, people["patient"].chain.records.functions.registerPatient(),
                                     action="register")
    with pytest.raises(AccessDenied, match="may not write records"):
        BatchWriter(patient).write([BatchItem(other.address, observation(0))])
    assert blob_cids(store) == []


def test_unregistered_patient_is_refused_before_storing(people, writer_lab, ids, store):
    with pytest.raises(InvalidRecord, match="not a registered patient"):
        BatchWriter(writer_lab).write([BatchItem(ids["other_patient"].address, observation(0))])
    assert blob_cids(store) == []


def test_patient_without_published_key_is_refused_before_storing(client_for, people, writer_lab, store):
    people["patient"].chain.transact(people["patient"].identity.account,
                                     people["patient"].chain.keys.functions.revokeKey(1, 1), action="revoke key")
    with pytest.raises(KeyNotFound, match="encryption key"):
        BatchWriter(writer_lab).write([BatchItem(people["patient"].address, observation(0))])
    assert blob_cids(store) == []


def test_malformed_record_stops_its_batch_before_anything_of_it_is_stored(people, writer_lab, store):
    patient = people["patient"]
    bad = observation(3)
    bad.pop("status")
    with pytest.raises(InvalidRecord, match="Observation.status"):
        BatchWriter(writer_lab, batch_size=8).write([BatchItem(patient.address, observation(i)) for i in range(3)]
                                             + [BatchItem(patient.address, bad)])
    assert blob_cids(store) == []
    assert patient.list_records(patient.address) == []


def test_second_writer_on_the_same_state_directory_is_refused(people, writer_lab):
    writer = BatchWriter(writer_lab)
    with writer.journal.open():
        with pytest.raises(BatchBusy, match="another batch write is running"):
            BatchWriter(writer_lab).write([BatchItem(people["patient"].address, observation(0))])


@pytest.mark.parametrize("umbral", [False, True], ids=["x25519 only", "patient has an Umbral key"])
def test_batched_record_has_the_same_keyring_as_a_single_write(people, writer_lab, store, umbral):
    patient = people["patient"]
    if umbral:
        identity = Identity(patient.identity.account, patient.identity.x25519,
                            {1: bytes(umbral_pre.SecretKey.random().to_be_bytes())})
        EHRClient(patient.chain, store, identity, state_dir=patient.state_dir).publish_umbral_key()
    single = writer_lab.add_record(patient.address, observation(0))
    batched = BatchWriter(writer_lab).write([BatchItem(patient.address, observation(0))]).batches[0].records[0]
    one, _ = parse_header(store.get(single.cid))
    other, _ = parse_header(store.get(batched.cid))
    assert (other.version, other.media_type) == (one.version, one.media_type)
    assert [(w.reader, w.key_version) for w in other.wraps] == [(w.reader, w.key_version) for w in one.wraps]
    assert (other.umbral is None, one.umbral is None) == (not umbral, not umbral)
    assert other.umbral is None or other.umbral.key_version == one.umbral.key_version


@pytest.mark.kubo
def test_batch_over_ipfs_has_no_barrier_and_every_record_reads_back(people, client_for, kubo):
    """A network store's puts are durable when they return: its group commit yields no barrier, and a
    resumed batch's blobs need no second sync."""
    from ehr_client.storage import IpfsStore

    patient = people["patient"]
    with IpfsStore(kubo.api_url, timeout=30) as ipfs:
        with ipfs.group_commit() as barrier:
            assert barrier is None
        lab = client_for("lab", blob_store=ipfs)
        patient.grant(lab.address, LAB, access="amend", expires_at=patient.chain.now() + DAY, share_keys=False)
        summary = BatchWriter(lab, batch_size=2).write(BatchItem(patient.address, observation(i)) for i in range(3))
        assert [len(b.records) for b in summary.batches] == [2, 1]
        reader = client_for("patient", blob_store=ipfs)
        for i, record_id in enumerate(summary.record_ids):
            assert reader.read_record(record_id).data == canonicalize(observation(i))
            assert ipfs.has(reader.get_record(record_id).cid)
