"""The per-patient listing cursor (`ehr_client.client.anchor_cache`) on a real Anvil: listings equal the
uncached scan across new records, batches, amendments and tombstones; after many mined blocks only
the new range is asked; reorganisations above and below the cursor depth; damaged, foreign, edited
and half-written cache files are discarded or refused, never trusted and never a crash."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench.rpc import RpcCounter
from ehr_client.batch import BatchItem, BatchWriter
from ehr_client.chain.client import ChainClient, deploy_suite
from ehr_client.client import EHRClient, Identity
from ehr_client.client.anchor_cache import AnchorCache
from ehr_client.client.locate import RecordLocator
from ehr_client.client.model import Listing
from ehr_client.chain.ids import batch_id_of
from ehr_client.client.manifest import BatchLeaf, build_manifest
from ehr_client.records import Scope
from ehr_client.storage import LocalStore, cid_to_bytes
from tests.client.conftest import lab_result, mine
from tests.small_disk import SmallDisk, small_disk  # noqa: F401  (fixture)

DAY = 86_400
LAB = int(Scope.LAB)


def _client(suite: ChainClient, ids: dict[str, Identity], store: LocalStore, state: Path, *, depth: int = 3,
            chain: ChainClient | None = None) -> EHRClient:
    return EHRClient(chain or suite, store, ids["patient"], state_dir=state, listing_depth=depth)


def _uncached(client: EHRClient, patient: str) -> Listing:
    return RecordLocator(ChainClient(client.chain.rpc_url, client.chain.deployment), client.store).listing(patient)


def _assert_same(client: EHRClient, patient: str) -> Listing:
    """The cached listing, asserted equal to a scan from the deployment by a fresh, uncached locator."""
    cached = client.list_records_report(patient)
    assert cached == _uncached(client, patient)
    return cached


_mine = mine


def _cache_file(client: EHRClient, patient: str) -> Path:
    anchors = client.locator.anchors
    assert anchors is not None
    path = anchors.path(patient)
    assert path is not None
    return path


def _log_ranges(counter: RpcCounter, start: int) -> list[tuple[int, str]]:
    """(fromBlock, toBlock) of every eth_getLogs the proxy forwarded since round trip `start`."""
    return [(int(c["params"][0]["fromBlock"], 16), str(c["params"][0]["toBlock"]))
            for trip in counter.calls[start:] for c in trip if c.get("method") == "eth_getLogs"]


def test_cached_listing_equals_the_scan_across_records_batches_amendments_and_tombstones(people, suite, ids, store,
                                                                                         tmp_path):
    patient, lab = people["patient"], people["lab"]
    patient.grant(lab.address, LAB, access="amend", expires_at=suite.now() + DAY, share_keys=False)
    client = _client(suite, ids, store, tmp_path / "cached")
    first = lab.add_record(patient.address, lab_result("first", 5.0))
    assert [r.record_id for r in _assert_same(client, patient.address).records] == [first.record_id]
    _mine(suite, 10)
    _assert_same(client, patient.address)
    cursor = json.loads(_cache_file(client, patient.address).read_text())
    assert cursor["cursor"] >= first.tx.block_number and len(cursor["events"]) == 1

    batch = BatchWriter(lab).write([BatchItem(patient.address, lab_result(f"batched {i}", 6.0 + i)) for i in range(3)])
    amended = lab.amend_record(first.record_id, lab_result("first, corrected", 5.5))
    second = patient.add_record(patient.address, lab_result("second", 7.0))
    listing = _assert_same(client, patient.address)  # new ones above the cursor, the first from the cache
    _mine(suite, 10)
    patient.tombstone(patient.get_record(second.record_id))
    patient.tombstone(patient.get_record(batch.record_ids[1]))
    lab.amend_record(batch.record_ids[0], lab_result("batched 0, corrected", 6.5))
    listing = _assert_same(client, patient.address)  # the first five from the cache, the newest from the node
    statuses = {r.record_id: r.status for r in listing.records}
    assert statuses[first.record_id] == "superseded" and statuses[amended.record_id] == "active"
    assert statuses[second.record_id] == "tombstoned" and statuses[batch.record_ids[1]] == "tombstoned"
    assert statuses[batch.record_ids[0]] == "superseded" and len(listing.records) == 7
    _mine(suite, 10)
    _assert_same(client, patient.address)
    events = json.loads(_cache_file(client, patient.address).read_text())["events"]
    assert len(events) == 5  # 3 RecordAdded of single versions, 1 batch, the batched record's amendment
    # A second client on the same state directory (a later CLI process) reads the file and agrees.
    assert _client(suite, ids, store, tmp_path / "cached").list_records_report(patient.address) == listing


def test_after_many_blocks_only_the_new_range_is_asked(people, suite, ids, store, tmp_path):
    patient = people["patient"]
    written = patient.add_record(patient.address, lab_result("before the blocks", 5.0))
    counter = RpcCounter(suite.rpc_url)
    try:
        chain = ChainClient(counter.url, suite.deployment)
        client = _client(suite, ids, store, tmp_path / "cached", depth=64, chain=chain)
        deploy = suite.deployment.deploy_block
        _mine(suite, 3_000)  # Anvil mines about 200 empty blocks a second here: keep the chain short
        mark = len(counter.calls)
        client.list_records(patient.address)  # cold: from the deployment
        assert min(f for f, _ in _log_ranges(counter, mark)) == deploy
        cursor = json.loads(_cache_file(client, patient.address).read_text())["cursor"]
        assert cursor == chain.head() - 64

        _mine(suite, 3_000)
        mark = len(counter.calls)
        listing = client.list_records_report(patient.address)
        warm = _log_ranges(counter, mark)
        assert listing == _uncached(client, patient.address)
        assert [r.record_id for r in listing.records] == [written.record_id]
        assert min(f for f, _ in warm) == cursor + 1  # nothing below the cursor was asked again
        head = chain.head()
        assert sorted(warm) == [(cursor + 1, hex(head))] * 2  # one query of each kind over the new range
        new_cursor = json.loads(_cache_file(client, patient.address).read_text())["cursor"]
        assert new_cursor == head - 64

        mark = len(counter.calls)
        client.list_records(patient.address)  # nothing new: one log query of each kind, from the cursor
        again = _log_ranges(counter, mark)
        assert [f for f, _ in again] == [new_cursor + 1, new_cursor + 1]
    finally:
        counter.close()


def _snapshot(suite: ChainClient) -> str:
    return str(suite.w3.provider.make_request("evm_snapshot", [])["result"])  # type: ignore[arg-type]


def _revert(suite: ChainClient, snapshot: str) -> None:
    assert suite.w3.provider.make_request("evm_revert", [snapshot])["result"]  # type: ignore[arg-type]


def test_a_reorganisation_above_the_cursor_changes_the_listing_and_keeps_the_cache(people, suite, ids, store,
                                                                                   tmp_path):
    patient = people["patient"]
    kept = patient.add_record(patient.address, lab_result("kept", 5.0))
    _mine(suite, 20)
    client = _client(suite, ids, store, tmp_path / "cached", depth=8)
    _assert_same(client, patient.address)
    cursor = json.loads(_cache_file(client, patient.address).read_text())["cursor"]
    snapshot = _snapshot(suite)
    lost = patient.add_record(patient.address, lab_result("on the losing fork", 6.0))
    assert lost.record_id in {r.record_id for r in _assert_same(client, patient.address).records}
    _revert(suite, snapshot)  # a fork shallower than the depth replaces the newest blocks
    won = patient.add_record(patient.address, lab_result("on the winning fork", 7.0))
    listing = _assert_same(client, patient.address)
    assert [r.record_id for r in listing.records] == [kept.record_id, won.record_id]
    stored = json.loads(_cache_file(client, patient.address).read_text())
    assert stored["cursor"] >= cursor  # the cursor's block was never replaced: the cache stayed


def test_a_reorganisation_below_the_cursor_throws_the_cache_away(people, suite, ids, store, tmp_path, caplog):
    patient = people["patient"]
    kept = patient.add_record(patient.address, lab_result("kept", 5.0))
    snapshot = _snapshot(suite)
    lost = patient.add_record(patient.address, lab_result("on the losing fork", 6.0))
    _mine(suite, 10)
    client = _client(suite, ids, store, tmp_path / "cached", depth=2)
    _assert_same(client, patient.address)
    stale = json.loads(_cache_file(client, patient.address).read_text())
    assert stale["cursor"] > lost.tx.block_number and len(stale["events"]) == 2
    _revert(suite, snapshot)  # a fork deeper than the depth: the cursor's block is replaced
    won = patient.add_record(patient.address, lab_result("on the winning fork", 7.0))
    _mine(suite, 10)
    caplog.set_level("WARNING", logger="ehr_client.listing")
    listing = _assert_same(client, patient.address)
    assert [r.record_id for r in listing.records] == [kept.record_id, won.record_id]
    assert any("reorganisation" in r.message for r in caplog.records)
    fresh = json.loads(_cache_file(client, patient.address).read_text())
    assert fresh["cursor_hash"] != stale["cursor_hash"] or fresh["cursor"] != stale["cursor"]
    assert [e["args"]["recordId"]["hex"] for e in fresh["events"]] == ["0x" + kept.record_id.hex(),
                                                                       "0x" + won.record_id.hex()]


def _with_cache(people: dict[str, EHRClient], suite: ChainClient, ids: dict[str, Identity], store: LocalStore,
                tmp_path: Path) -> tuple[EHRClient, Path, Listing]:
    patient = people["patient"]
    for i in range(2):
        patient.add_record(patient.address, lab_result(f"cached {i}", 5.0 + i))
    BatchWriter(patient).write([BatchItem(patient.address, lab_result("batched", 9.0))])
    _mine(suite, 10)
    client = _client(suite, ids, store, tmp_path / "cached")
    listing = _assert_same(client, patient.address)
    return client, _cache_file(client, patient.address), listing


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "other-format", "other-chain", "other-patient",
                                    "bad-event", "event-above-cursor", "directory"])
def test_a_damaged_or_foreign_cache_file_is_rebuilt_from_the_chain(people, suite, ids, store, tmp_path, damage):
    client, path, listing = _with_cache(people, suite, ids, store, tmp_path)
    text = path.read_text()
    document = json.loads(text)
    if damage == "garbage":
        path.write_bytes(os.urandom(300))
    elif damage == "truncated":
        path.write_text(text[: len(text) // 2])
    elif damage == "empty":
        path.write_text("")
    elif damage == "other-format":
        path.write_text(json.dumps({**document, "format": "ehr-listing-cursor/2"}))
    elif damage == "other-chain":
        path.write_text(json.dumps({**document, "chain_id": document["chain_id"] + 1}))
    elif damage == "other-patient":
        path.write_text(json.dumps({**document, "patient": people["stranger"].address}))
    elif damage == "bad-event":
        document["events"][0]["args"]["recordId"] = {"hex": "0xnothex"}
        path.write_text(json.dumps(document))
    elif damage == "event-above-cursor":
        document["events"][0]["block"] = document["cursor"] + 1
        path.write_text(json.dumps(document))
    else:
        path.unlink()
        path.mkdir()
    again = client.list_records_report(people["patient"].address)
    assert again == listing == _uncached(client, people["patient"].address)
    if damage != "directory":
        assert json.loads(path.read_text())["format"] == "ehr-listing-cursor/1"  # rewritten whole


def test_edited_cache_entries_the_chain_does_not_vouch_for_are_left_out(people, suite, ids, store, tmp_path):
    """Someone edits the file: an invented record, another patient's real record claimed as ours, and a
    batch that was never anchored, with a manifest that verifies against the invented event. None of
    it reaches the listing, and the cache is dropped."""
    client, path, listing = _with_cache(people, suite, ids, store, tmp_path)
    patient, other = people["patient"], people["stranger"]
    other.register_patient()
    theirs = other.add_record(other.address, lab_result("someone else's", 4.0))
    document = json.loads(path.read_text())
    single = next(e for e in document["events"] if e["name"] == "RecordAdded")
    invented = json.loads(json.dumps(single))
    invented["args"]["recordId"] = {"hex": "0x" + os.urandom(32).hex()}
    invented["log_index"] += 100
    claimed = json.loads(json.dumps(single))
    claimed["args"]["recordId"] = {"hex": "0x" + theirs.record_id.hex()}
    claimed["log_index"] += 101
    key = os.urandom(32)
    manifest = build_manifest(other.address, patient.address, key, [BatchLeaf(LAB, theirs.content_hash, theirs.cid)])
    data = manifest.to_bytes()
    cid = store.put(data)
    never = json.loads(json.dumps(single))
    never["name"], never["log_index"] = "BatchAnchored", single["log_index"] + 102
    never["args"] = {"batchId": {"hex": "0x" + batch_id_of(other.address, key).hex()}, "author": other.address,
                     "patient": patient.address, "batchKey": {"hex": "0x" + key.hex()},
                     "root": {"hex": "0x" + manifest.root.hex()}, "scopes": manifest.scopes, "leafCount": 1,
                     "manifestHash": {"hex": "0x" + hashlib.sha256(data).hexdigest()},
                     "manifestCid": {"hex": "0x" + cid_to_bytes(cid).hex()}}
    document["events"] += [invented, claimed, never]
    path.write_text(json.dumps(document))

    edited = client.list_records_report(patient.address)
    assert edited == listing == _uncached(client, patient.address)
    assert not path.exists()  # dropped: the next listing rebuilds it from the chain
    assert client.list_records_report(patient.address) == listing
    assert path.exists()


def test_a_cache_from_another_deployment_is_not_used(people, suite, ids, store, tmp_path, rpc_url):
    client, path, listing = _with_cache(people, suite, ids, store, tmp_path)
    governors = [ids[g].address for g in ("gov_a", "gov_b", "gov_c")]
    other = ChainClient(rpc_url, deploy_suite(rpc_url, ids["gov_a"].account, network="other", governors=governors,
                                              threshold=2))
    elsewhere = _client(other, ids, store, tmp_path / "cached", chain=other)
    foreign = _cache_file(elsewhere, people["patient"].address)
    assert foreign != path  # another deployment has its own folder; even copied over, it is refused
    foreign.parent.mkdir(parents=True)
    foreign.write_bytes(path.read_bytes())
    _mine(suite, 10)
    assert elsewhere.list_records_report(people["patient"].address) == Listing((), ())
    anchors = elsewhere.locator.anchors
    assert anchors is not None and anchors.load(people["patient"].address) is None  # refused, never used
    assert client.list_records_report(people["patient"].address) == listing


def test_the_cache_file_holds_no_health_data(people, suite, ids, store, tmp_path):
    _, path, _ = _with_cache(people, suite, ids, store, tmp_path)
    text = path.read_text()
    for plain in ("cached 0", "cached 1", "batched", "Observation", "mmol/L", "laboratory"):
        assert plain not in text
    assert "batched" in json.dumps(lab_result("batched", 9.0))  # positive control: the words were written


def _child(rpc_url: str, suite: ChainClient, state: Path, patient: str, step: str) -> subprocess.Popen[str]:
    deployment = state.parent / "deployment.json"
    deployment.write_text(suite.deployment.to_json())
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen([sys.executable, "-m", "tests.client._killed_listing", rpc_url, str(deployment),
                                str(state), patient, step], cwd=root, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(root)})
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process


@pytest.mark.parametrize("step", ["fsync", "replace", "loop"])
def test_a_kill_while_the_cache_is_written_leaves_the_old_cache_or_the_new_one(people, suite, ids, store, tmp_path,
                                                                               rpc_url, step):
    client, path, listing = _with_cache(people, suite, ids, store, tmp_path)
    before = path.read_bytes()
    patient = people["patient"].address
    for round_ in range(3 if step == "loop" else 1):
        process = _child(rpc_url, suite, tmp_path / "cached", patient, step)
        if step == "loop":
            time.sleep(random.Random(round_).uniform(0.05, 0.5))
            process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL
        if step != "loop":
            assert path.read_bytes() == before  # killed before the rename: the old cache, whole
        document: Any = json.loads(path.read_text())
        assert document["format"] == "ehr-listing-cursor/1"
        assert client.list_records_report(patient) == listing


def test_without_a_directory_the_cursor_is_kept_in_memory(people, suite, store):
    patient = people["patient"]
    first = patient.add_record(patient.address, lab_result("in memory", 5.0))
    anchors = AnchorCache(suite, None, depth=2)
    locator = RecordLocator(suite, store, anchors=anchors)
    assert anchors.path(patient.address) is None
    _mine(suite, 5)
    assert locator.listing(patient.address) == _uncached(patient, patient.address)
    kept = anchors.load(patient.address)
    assert kept is not None and kept.cursor == suite.head() - 2
    assert [bytes(e.args["recordId"]) for e in kept.events] == [first.record_id]
    second = patient.add_record(patient.address, lab_result("in memory, later", 6.0))
    _mine(suite, 5)
    listing = locator.listing(patient.address)
    assert listing == _uncached(patient, patient.address)
    assert [r.record_id for r in listing.records] == [first.record_id, second.record_id]
    later = anchors.load(patient.address)
    assert later is not None and later.cursor > kept.cursor and len(later.events) == 2


def test_a_full_disk_while_the_cursor_is_written_still_lists_and_leaves_the_old_cursor(people, suite, ids, store,
                                                                                      small_disk, caplog):
    patient = people["patient"]
    patient.add_record(patient.address, lab_result("before the disk filled", 5.0))
    _mine(suite, 10)
    client = _client(suite, ids, store, small_disk.root / "state")
    listing = _assert_same(client, patient.address)
    path = _cache_file(client, patient.address)
    before = path.read_bytes()
    later = patient.add_record(patient.address, lab_result("while the disk is full", 6.0))
    _mine(suite, 10)
    small_disk.fill()
    caplog.set_level("WARNING", logger="ehr_client.listing")
    full = client.list_records_report(patient.address)  # the listing is complete; only the cache waits
    assert full == _uncached(client, patient.address) and len(full.records) == len(listing.records) + 1
    assert path.read_bytes() == before and small_disk.leftovers() == []
    assert any("could not write the listing cache" in r.message for r in caplog.records)
    small_disk.free()
    assert client.list_records_report(patient.address) == full
    assert later.record_id.hex() in path.read_text()


def test_listing_an_address_with_no_records_keeps_no_file(people, suite, ids, store, tmp_path):
    """Anyone may ask a portal about any address: that must not make it keep a file per address."""
    client = _client(suite, ids, store, tmp_path / "cached")
    _mine(suite, 10)
    for _ in range(3):
        assert client.list_records_report("0x" + os.urandom(20).hex()) == Listing((), ())
    assert not (tmp_path / "cached").exists() or not list((tmp_path / "cached").rglob("*.json"))
