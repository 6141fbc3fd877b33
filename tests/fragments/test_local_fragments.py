"""FragmentedStore over LocalStore nodes: round trips, node loss, tampering, repair, removal, memory."""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ehr_client.errors import BlobNotFound, ConfigError, IntegrityError, InvalidRecord, StorageUnavailable
from ehr_client.storage._fragment_codec import HEADER_SIZE, Layout
from ehr_client.storage._fragment_manifest import Manifest
from ehr_client.storage.base import BlobStore
from ehr_client.storage.cid import Cid, cid_for_bytes
from ehr_client.storage.fragmented import FragmentedStore, FragmentStatus, InvalidManifest
from ehr_client.storage.local import LocalStore
from tests.fragments.conftest import FIXED

MiB = 1 << 20
SEGMENT = 3 * 1024


def _blobs(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and ".incoming" not in p.parts)


def _node_of(store: FragmentedStore, cid: Cid, index: int) -> LocalStore:
    node = store.nodes[store.manifest(cid).fragments[index].node]
    assert isinstance(node, LocalStore)
    return node


def _fragment_path(store: FragmentedStore, cid: Cid, index: int) -> Path:
    return _node_of(store, cid, index).path_for(store.manifest(cid).fragments[index].cid)


def _take_down(store: FragmentedStore, cid: Cid, *indices: int) -> list[str]:
    """Delete the directories of the nodes holding these fragments (a node that lost its disk)."""
    names = [store.manifest(cid).fragments[i].node for i in indices]
    for name in names:
        node = store.nodes[name]
        assert isinstance(node, LocalStore)
        shutil.rmtree(node.root)
    return names


def test_fragmented_store_is_a_blob_store(local_store: FragmentedStore) -> None:
    assert isinstance(local_store, BlobStore)


@settings(FIXED, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.one_of(st.sampled_from([0, 1, 2, 3, SEGMENT - 1, SEGMENT, SEGMENT + 1, 4 * SEGMENT]),
                      st.integers(0, 5 * SEGMENT)))
def test_put_get_round_trips_any_size(local_store: FragmentedStore, size: int) -> None:
    data = hashlib.shake_256(size.to_bytes(8, "big")).digest(size)
    cid = local_store.put(data)
    assert local_store.get(cid) == data
    assert b"".join(local_store.iter_get(cid)) == data
    assert local_store.size(cid) == size
    assert local_store.has(cid)


def test_put_stream_matches_put_and_spans_segments(local_store: FragmentedStore, make_blob: Callable[[int], bytes]) -> None:
    data = make_blob(10 * SEGMENT + 17)
    cid = local_store.put_stream(data[i:i + 1000] for i in range(0, len(data), 1000))
    manifest = local_store.manifest(cid)
    assert manifest.layout.segments == 11
    assert local_store.get(cid) == data
    assert manifest.sha256 == hashlib.sha256(data).hexdigest()


def test_fragments_go_to_distinct_nodes_and_hold_about_one_kth(
    local_store: FragmentedStore, make_blob: Callable[[int], bytes]
) -> None:
    data = make_blob(100_000)
    cid = local_store.put(data)
    manifest = local_store.manifest(cid)
    assert len({f.node for f in manifest.fragments}) == 5
    for entry in manifest.fragments:
        node = local_store.nodes[entry.node]
        assert node.size(entry.cid) == entry.size == Layout(100_000, 3, 5, SEGMENT).fragment_size
        assert entry.size <= -(-100_000 // 3) + HEADER_SIZE + 3
        held = [f for f in manifest.fragments if node.has(f.cid)]
        assert held == [entry]
    assert all(node.has(cid) for node in local_store.nodes.values())


def test_read_survives_losing_n_minus_k_nodes(local_store: FragmentedStore, make_blob: Callable[[int], bytes]) -> None:
    data = make_blob(20_000)
    cid = local_store.put(data)
    local_store.manifest(cid)
    _take_down(local_store, cid, 0, 3)
    assert local_store.get(cid) == data
    report = local_store.check(cid)
    assert report.intact == 3 and report.recoverable and not report.complete


def test_read_with_fewer_than_k_fragments_says_how_many_were_found(
    local_store: FragmentedStore, make_blob: Callable[[int], bytes]
) -> None:
    cid = local_store.put(make_blob(20_000))
    lost = _take_down(local_store, cid, 0, 2, 4)
    with pytest.raises(StorageUnavailable) as caught:
        local_store.get(cid)
    message = str(caught.value)
    assert "only 2 of 5 fragments" in message and "3 are needed" in message
    assert all(f"on {name}: missing" in message for name in lost)
    assert not local_store.has(cid)


def test_altered_fragment_is_skipped_and_repaired_in_place(
    local_store: FragmentedStore, make_blob: Callable[[int], bytes]
) -> None:
    data = make_blob(30_000)
    cid = local_store.put(data)
    path = _fragment_path(local_store, cid, 1)
    raw = bytearray(path.read_bytes())
    raw[HEADER_SIZE + 5] ^= 0x01
    path.write_bytes(bytes(raw))
    _take_down(local_store, cid, 4)

    assert local_store.get(cid) == data  # fragments 0, 2, 3: the altered one is never trusted
    report = local_store.check(cid)
    assert report.fragments[1].status is FragmentStatus.CORRUPT
    assert report.fragments[4].status is FragmentStatus.MISSING

    result = local_store.repair(cid)
    assert result.manifest_cid == cid
    assert dict(result.restored)[1] == report.fragments[1].node
    assert path.read_bytes() != bytes(raw)
    assert result.after.fragments[1].status is FragmentStatus.OK


def test_fragment_that_hashes_to_its_cid_but_is_not_the_manifests_is_skipped(
    local_store: FragmentedStore, make_blob: Callable[[int], bytes]
) -> None:
    """A node answering with another valid blob (a replayed or swapped fragment) is caught by sha-256."""
    data = make_blob(9_000)
    cid = local_store.put(data)
    honest = local_store.manifest(cid)
    entries = list(honest.fragments)
    swapped = [entries[1].__class__(0, entries[0].node, entries[1].cid, entries[0].sha256, entries[0].size)]
    lying = Manifest(honest.size, honest.sha256, honest.k, honest.n, honest.segment_size, honest.nonce,
                     (swapped[0], *entries[1:]))
    lying_bytes = lying.to_bytes()
    for node in local_store.nodes.values():
        node.put(lying_bytes)
    node_0 = local_store.nodes[entries[0].node]
    node_0.put(local_store.nodes[entries[1].node].get(entries[1].cid))
    lying_cid = cid_for_bytes(lying_bytes)

    assert local_store.get(lying_cid) == data
    report = local_store.check(lying_cid)
    assert report.fragments[0].status is FragmentStatus.CORRUPT
    assert "sha-256" in report.fragments[0].problem


def test_repair_restores_a_lost_node_in_place_with_the_same_cids(
    local_store: FragmentedStore, make_blob: Callable[[int], bytes]
) -> None:
    data = make_blob(3 * SEGMENT + 5)
    cid = local_store.put(data)
    manifest = local_store.manifest(cid)
    lost = _take_down(local_store, cid, 2)[0]
    new_disk = LocalStore(_node_of(local_store, cid, 2).root)
    store = FragmentedStore({**local_store.nodes, lost: new_disk}, k=3, n=5, segment_size=SEGMENT)

    result = store.repair(cid)
    assert result.restored == ((2, lost),) and lost in result.manifest_copies
    assert result.after.complete and result.after.intact == 5
    assert store.nodes[lost].has(manifest.fragments[2].cid)
    assert store.get(cid) == data


def test_repair_moves_a_fragment_to_a_spare_when_its_node_is_gone(
    local_store: FragmentedStore, make_blob: Callable[[int], bytes]
) -> None:
    data = make_blob(20_000)
    cid = local_store.put(data)
    manifest = local_store.manifest(cid)
    spare = next(node for node in local_store.nodes if node not in manifest.node_ids)
    gone = manifest.fragments[0].node
    remaining = {node_id: s for node_id, s in local_store.nodes.items() if node_id != gone}
    store = FragmentedStore(remaining, k=3, n=5, segment_size=SEGMENT)
    assert store.check(cid).fragments[0].status is FragmentStatus.UNCONFIGURED

    result = store.repair(cid)
    assert result.restored == ((0, spare),) and result.manifest_cid == cid
    assert result.after.complete
    assert result.after.fragments[0].found_on == spare
    _take_down(store, cid, 1, 2)
    assert store.get(cid) == data  # the unchanged manifest still finds the moved fragment


def test_repair_with_fewer_than_k_fragments_raises_storage_unavailable(
    local_store: FragmentedStore, make_blob: Callable[[int], bytes]
) -> None:
    cid = local_store.put(make_blob(5_000))
    _take_down(local_store, cid, 0, 1, 2)
    with pytest.raises(StorageUnavailable, match="only 2 of 5 fragments"):
        local_store.repair(cid)


def test_write_fails_and_keeps_nothing_when_too_few_nodes_accept(
    local_nodes: dict[str, LocalStore], make_blob: Callable[[int], bytes]
) -> None:
    store = FragmentedStore({k: v for k, v in local_nodes.items() if k != "spare"}, k=3, n=5, segment_size=SEGMENT)
    shutil.rmtree(local_nodes["n3"].root)
    with pytest.raises(StorageUnavailable, match="only 4 of 5 fragments could be stored"):
        store.put(make_blob(1_000))
    assert all(not _blobs(node.root) for node in local_nodes.values() if node.root.exists())


def test_write_uses_a_spare_when_a_node_refuses(
    local_nodes: dict[str, LocalStore], make_blob: Callable[[int], bytes]
) -> None:
    store = FragmentedStore(local_nodes, k=3, n=5, segment_size=SEGMENT)
    shutil.rmtree(local_nodes["n3"].root)
    data = make_blob(1_000)
    cid = store.put(data)
    assert "n3" not in store.manifest(cid).node_ids
    assert store.get(cid) == data


def test_streamed_write_that_fails_midway_keeps_nothing(
    local_store: FragmentedStore, local_nodes: dict[str, LocalStore]
) -> None:
    def broken() -> Iterator[bytes]:
        yield bytes(5 * SEGMENT)
        raise OSError("the source file became unreadable")

    with pytest.raises(OSError, match="unreadable"):
        local_store.put_stream(broken())
    assert all(not _blobs(node.root) for node in local_nodes.values())


def test_streamed_write_to_a_failing_node_keeps_nothing(
    local_nodes: dict[str, LocalStore], make_blob: Callable[[int], bytes]
) -> None:
    store = FragmentedStore({k: v for k, v in local_nodes.items() if k != "spare"}, k=3, n=5, segment_size=SEGMENT)
    shutil.rmtree(local_nodes["n1"].root)
    data = make_blob(6 * SEGMENT)
    with pytest.raises(StorageUnavailable, match="nothing was kept"):
        store.put_stream(data[i:i + 500] for i in range(0, len(data), 500))
    assert all(not _blobs(node.root) for node in local_nodes.values() if node.root.exists())


def test_remove_deletes_every_fragment_and_manifest(
    local_store: FragmentedStore, local_nodes: dict[str, LocalStore], make_blob: Callable[[int], bytes]
) -> None:
    cid = local_store.put(make_blob(7_000))
    local_store.remove(cid)
    assert all(not _blobs(node.root) for node in local_nodes.values())
    assert not local_store.has(cid)
    with pytest.raises(BlobNotFound):
        local_store.get(cid)
    local_store.remove(cid)


def test_plain_blob_cid_is_not_a_manifest(local_store: FragmentedStore, local_nodes: dict[str, LocalStore]) -> None:
    plain = local_nodes["n0"].put(b'{"resourceType": "not a manifest"}')
    with pytest.raises(InvalidManifest):
        local_store.get(plain)
    assert not local_store.has(plain)
    with pytest.raises(InvalidRecord):
        local_store.get(Cid("not-a-cid"))
    with pytest.raises(BlobNotFound):
        local_store.size(cid_for_bytes(b"never stored"))


def test_abandoning_a_streamed_read_releases_its_workers(
    local_store: FragmentedStore, make_blob: Callable[[int], bytes]
) -> None:
    cid = local_store.put(make_blob(40 * SEGMENT))
    baseline = threading.active_count()
    chunks = local_store.iter_get(cid)
    assert len(next(chunks)) == SEGMENT
    chunks.close()  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.02)
    assert threading.active_count() <= baseline


def test_large_blob_streams_in_and_out_in_bounded_memory(tmp_path: Path) -> None:
    nodes = {f"m{i}": LocalStore(tmp_path / f"m{i}", chunk_size=64 * 1024) for i in range(5)}
    store = FragmentedStore(nodes, k=3, n=5, segment_size=3 * 256 * 1024, spool_limit=256 * 1024)
    size = 48 * MiB
    block = hashlib.shake_256(b"large").digest(MiB)
    expected = hashlib.sha256()
    for _ in range(size // MiB):
        expected.update(block)
    tracemalloc.start()
    try:
        cid = store.put_stream(block for _ in range(size // MiB))
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        digest = hashlib.sha256()
        for chunk in store.iter_get(cid):
            digest.update(chunk)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest.digest() == expected.digest()
    assert write_peak < 12 * MiB, write_peak  # the blob is 48 MiB
    assert read_peak < 8 * MiB, read_peak


@pytest.mark.parametrize(
    ("nodes", "options", "problem"),
    [
        (2, {"k": 3, "n": 2}, "k <= n"),
        (3, {"k": 2, "n": 4}, "at least 4 storage nodes"),
        (5, {"k": 3, "n": 5, "segment_size": 3 * 1024 + 1}, "multiple of k"),
        (5, {"k": 0, "n": 5}, "1 <= k"),
    ],
)
def test_bad_coding_parameters_raise_config_error(
    tmp_path: Path, nodes: int, options: dict[str, int], problem: str
) -> None:
    stores = {f"x{i}": LocalStore(tmp_path / str(i)) for i in range(nodes)}
    with pytest.raises(ConfigError, match=problem):
        FragmentedStore(stores, **options)


def test_manifest_that_lies_about_the_blob_hash_is_an_integrity_error(
    local_store: FragmentedStore, make_blob: Callable[[int], bytes]
) -> None:
    cid = local_store.put(make_blob(4_000))
    honest = local_store.manifest(cid)
    lying = Manifest(honest.size, "00" * 32, honest.k, honest.n, honest.segment_size, honest.nonce, honest.fragments)
    data = lying.to_bytes()
    for node in local_store.nodes.values():
        node.put(data)
    with pytest.raises(IntegrityError, match="does not match its manifest"):
        local_store.get(cid_for_bytes(data))
