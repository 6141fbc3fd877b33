import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ehr_client.batch import BatchItem, BatchWriter, JournalDamaged, import_directory
from ehr_client.batch.gc import collect
from ehr_client.journal import checked_line
from ehr_client.errors import AccessDenied, BlobNotFound, ChainUnavailable, ConfigError, IntegrityError
from ehr_client.records import canonicalize
from tests.batch.conftest import observation
from tests.blob_files import blob_cids, overwrite_blob

REPO = Path(__file__).resolve().parents[2]


class _Stalled:
    """Blocks are not mined (automine off) and the client gives up after 1 s, as on a stalled node."""

    def __init__(self, client):
        self.client, self.w3 = client, client.chain.w3

    def __enter__(self):
        self.client.chain.timeout = 1
        self.w3.provider.make_request("evm_setAutomine", [False])
        return self

    def __exit__(self, *exc):
        self.w3.provider.make_request("evm_setAutomine", [True])
        self.client.chain.timeout = 30


def _anchored_roots(client):
    return [bytes(e.args["root"]) for e in client.chain.get_events("RecordRegistry", "BatchAnchored")]


def test_anchor_timeout_then_rerun_reanchors_the_stored_batch_without_duplicates(people, writer_lab, store):
    patient = people["patient"]
    items = [BatchItem(patient.address, observation(i)) for i in range(5)]
    writer = BatchWriter(writer_lab, batch_size=8)
    with _Stalled(writer_lab):
        with pytest.raises(ChainUnavailable, match="not mined"):
            writer.write(items)
        stored = blob_cids(store)
        assert len(stored) == 5 + 1  # the records and the manifest, nothing anchored yet
        writer_lab.chain.w3.provider.make_request("anvil_dropAllTransactions", [])
    assert len(writer.pending()) == 5 and _anchored_roots(writer_lab) == []

    summary = writer.write(items)

    assert (summary.stored, summary.reused, summary.skipped) == (0, 5, 0)
    assert len(summary.batches) == 1 and summary.batches[0].tx is not None
    assert blob_cids(store) == stored
    located = patient.list_records(patient.address)
    assert [r.record_id for r in located] == list(summary.record_ids)
    assert patient.read_record(located[4].record_id).data == canonicalize(observation(4))
    assert writer.pending() == [] and not writer.journal.path.exists()


def test_anchor_mined_after_the_timeout_is_found_and_not_sent_again(people, writer_lab, store):
    patient = people["patient"]
    writer = BatchWriter(writer_lab)
    with _Stalled(writer_lab):
        with pytest.raises(ChainUnavailable):
            writer.write([BatchItem(patient.address, observation(i)) for i in range(3)])
        writer_lab.chain.w3.provider.make_request("evm_mine", [])
    assert len(_anchored_roots(writer_lab)) == 1

    summary = writer.resume()

    assert len(summary.batches) == 1 and summary.batches[0].tx is None
    assert summary.batches[0].root == _anchored_roots(writer_lab)[0] and len(_anchored_roots(writer_lab)) == 1
    assert len(patient.list_records(patient.address)) == 3 and len(blob_cids(store)) == 4


def test_grant_revoked_before_the_resumed_anchor_anchors_nothing_until_discarded(people, writer_lab, store):
    patient = people["patient"]
    writer = BatchWriter(writer_lab)
    with _Stalled(writer_lab):
        with pytest.raises(ChainUnavailable):
            writer.write([BatchItem(patient.address, observation(i)) for i in range(3)])
        writer_lab.chain.w3.provider.make_request("anvil_dropAllTransactions", [])
    patient.revoke(writer_lab.address)

    with pytest.raises(AccessDenied, match="may not write records"):
        writer.resume()
    assert _anchored_roots(writer_lab) == [] and len(writer.pending()) == 3

    assert writer.discard() == 3
    assert blob_cids(store) == [] and writer.pending() == []


def _kill_mid_import(tmp_path, suite, ids, patient, directory, *, batch_size, kill_after_stored=None,
                     kill_after=None):
    config = tmp_path / "killed-import.json"
    config.touch(mode=0o600)
    config.write_text(json.dumps({
        "rpc": suite.rpc_url, "deployment": suite.deployment.to_json(), "wallet": ids["lab"].account.key.hex(),
        "x25519": ids["lab"].x25519[1].hex(), "store": str(tmp_path / "store"),
        "state": str(tmp_path / "state" / "lab"), "patient": patient, "directory": str(directory),
        "batch_size": batch_size,
        **({"kill_after_stored": kill_after_stored} if kill_after_stored is not None else {}),
        **({"kill_after": kill_after} if kill_after is not None else {}),
    }))
    done = subprocess.run([sys.executable, "-m", "tests.batch._killed_import", str(config)], cwd=REPO,
                          capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]


def test_process_killed_mid_import_resumes_without_duplicates_or_orphans(
    people, writer_lab, store, suite, ids, fhir_dir, tmp_path
):
    patient = people["patient"]
    directory = fhir_dir(14)
    # batch 1 (8 records) is anchored, then 3 records of batch 2 are stored when the process dies
    _kill_mid_import(tmp_path, suite, ids, patient.address, directory, batch_size=8, kill_after_stored=11)
    assert len(_anchored_roots(writer_lab)) == 1
    assert len(blob_cids(store)) == 11 + 1

    result = import_directory(writer_lab, patient.address, directory, batch_size=8)

    summary = result.summary
    assert (summary.skipped, summary.reused, summary.stored) == (8, 3, 3)
    assert len(_anchored_roots(writer_lab)) == 2 and [len(b.records) for b in summary.batches] == [6]
    located = patient.list_records(patient.address)
    assert len(located) == 14 and len({r.record_id for r in located}) == 14
    assert [r.record_id for r in located] == list(summary.record_ids)
    manifests = {str(r.batch.manifest_cid) for r in located if r.batch}
    referenced = {r.cid for r in located} | manifests
    on_disk = set(blob_cids(store))
    assert len(on_disk) == 14 + 2 and referenced <= on_disk  # every blob is a record or a manifest
    assert patient.read_record(located[13].record_id).data == canonicalize(observation(13))
    assert not writer_lab.state_dir.joinpath("batch", "journal.jsonl").exists()
    assert sorted(os.listdir(writer_lab.state_dir / "batch")) == ["anchored.log", "batches.log", "lock"]

    # the same import run again, after it completed: nothing is written twice
    again = import_directory(writer_lab, patient.address, directory, batch_size=8).summary
    assert (again.skipped, again.stored, again.batches) == (14, 0, ())
    assert len(patient.list_records(patient.address)) == 14


def test_torn_last_journal_line_is_cut_off_and_the_write_resumes(people, writer_lab, store):
    patient = people["patient"]
    items = [BatchItem(patient.address, observation(i)) for i in range(3)]
    writer = BatchWriter(writer_lab)
    with _Stalled(writer_lab):
        with pytest.raises(ChainUnavailable):
            writer.write(items)
        writer_lab.chain.w3.provider.make_request("anvil_dropAllTransactions", [])
    with writer.journal.path.open("a") as journal:
        journal.write('{"op":"stored","fp":"ab')  # a crash in the middle of an append

    summary = writer.write(items)

    assert (summary.stored, summary.reused) == (0, 3) and len(_anchored_roots(writer_lab)) == 1


def _line(payload: str) -> str:
    return checked_line(payload.encode()).decode()


@pytest.mark.parametrize("damage", ["unchecksummed line", "line cut in the middle", "flipped byte"])
def test_damaged_journal_is_refused_with_what_to_do_and_nothing_is_replayed(people, writer_lab, store, damage):
    patient = people["patient"]
    writer = BatchWriter(writer_lab)
    with _Stalled(writer_lab):
        with pytest.raises(ChainUnavailable):
            writer.write([BatchItem(patient.address, observation(i)) for i in range(3)])
        writer_lab.chain.w3.provider.make_request("anvil_dropAllTransactions", [])
    lines = writer.journal.path.read_text().splitlines(keepends=True)
    assert '"index":1' in lines[3]
    if damage == "unchecksummed line":
        lines[3] = lines[3].split("\t")[0] + "\n"
    elif damage == "line cut in the middle":
        lines[3] = lines[3][: len(lines[3]) // 2] + "\n"
    else:
        lines[3] = lines[3].replace('"index":1', '"index":2')
    writer.journal.path.write_text("".join(lines))
    with pytest.raises(JournalDamaged, match="damaged at line 4.*Move it"):
        writer.write([BatchItem(patient.address, observation(i)) for i in range(3)])
    with pytest.raises(ConfigError):
        writer.pending()
    assert _anchored_roots(writer_lab) == []


def test_a_well_formed_journal_replays(writer_lab):
    writer = BatchWriter(writer_lab)
    writer.journal.dir.mkdir(parents=True)
    writer.journal.path.write_text(_line(f'{{"op":"start","author":"{writer_lab.address}"}}'))
    assert writer.pending() == []


@pytest.mark.parametrize("step", ["sealed", "sent", "mined", "anchored", "finished"])
def test_import_killed_at_each_anchoring_step_lands_once_and_leaves_no_orphan(
    people, writer_lab, store, suite, ids, fhir_dir, tmp_path, step
):
    """The ledger after a kill at each step of anchoring, and the same import run again: every
    record once, all readable, and after gc nothing unreferenced in the store."""
    patient = people["patient"]
    directory = fhir_dir(5)
    _kill_mid_import(tmp_path, suite, ids, patient.address, directory, batch_size=8, kill_after=step)
    if step == "sent":
        suite.w3.provider.make_request("evm_mine", [])  # the node mines the anchor anyway

    summary = import_directory(writer_lab, patient.address, directory, batch_size=8).summary

    located = patient.list_records(patient.address)
    assert len(located) == 5 and sorted(r.record_id for r in located) == sorted(summary.record_ids)
    assert len(_anchored_roots(writer_lab)) == 1  # one anchor, never two
    assert patient.read_record(summary.record_ids[4]).data == canonicalize(observation(4))
    collect(suite, store, [writer_lab.state_dir], grace=0, delete=True)
    manifests = {str(r.batch.manifest_cid) for r in located if r.batch}
    assert set(blob_cids(store)) == {str(r.cid) for r in located} | manifests


def test_power_lost_before_the_group_commit_barrier_anchors_no_damaged_blob(
    people, writer_lab, store, suite, ids, fhir_dir, tmp_path
):
    """Blobs and journal lines of an open batch wait for one barrier before the batch is sealed. A
    kill -9 keeps the page cache, so the loss of power is acted out on the files: the newest blob
    of the open batch comes back empty and a journal line that never reached the disk as zeros."""
    patient = people["patient"]
    directory = fhir_dir(13)
    _kill_mid_import(tmp_path, suite, ids, patient.address, directory, batch_size=8, kill_after_stored=11)
    assert len(_anchored_roots(writer_lab)) == 1
    journal = writer_lab.state_dir / "batch" / "journal.jsonl"
    stored = [json.loads(line.split(b"\t")[0]) for line in journal.read_bytes().splitlines()]
    open_cids = [op["cid"] for op in stored if op["op"] == "stored"][8:]
    assert len(open_cids) == 3
    lost = open_cids[-1]
    overwrite_blob(store, lost, b"")  # indexed in its pack, its data never written
    with journal.open("ab") as handle:
        handle.write(b"\0" * 97)  # the file grew, the line's bytes never came

    result = import_directory(writer_lab, patient.address, directory, batch_size=8)

    summary = result.summary
    assert summary.skipped == 8 and summary.reused + summary.stored == 5
    located = patient.list_records(patient.address)
    mine = [r for r in located if r.record_id in set(summary.record_ids)]
    assert len(mine) == 13 and len({r.record_id for r in mine}) == 13
    for record in mine:  # every anchored record reads back whole
        assert store.get(record.cid)
    assert patient.read_record(summary.record_ids[12]).data == canonicalize(observation(12))
    with pytest.raises((BlobNotFound, IntegrityError)):  # the damaged blob is no record's blob
        store.get(lost)
    assert lost not in {str(r.cid) for r in mine}
