from __future__ import annotations

import errno
import os
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ehr_client.errors import BlobNotFound, IntegrityError, InvalidRecord, StorageUnavailable
from ehr_client.storage.base import BlobStore
from ehr_client.storage.cid import Cid, cid_for_bytes
from ehr_client.storage.local import LocalStore

MiB = 1 << 20
DAG_PB_CID = Cid("bafybeid72rlr23lj44nmbqecty5trfjddqu4g4fhfrklplndlp2hmrh2f4")


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_local_store_is_a_blob_store(local_store: LocalStore) -> None:
    assert isinstance(local_store, BlobStore)


@settings(derandomize=True, max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=10_000))
def test_put_then_get_round_trips(local_store: LocalStore, data: bytes) -> None:
    cid = local_store.put(data)
    assert cid == cid_for_bytes(data)
    assert local_store.get(cid) == data
    assert b"".join(local_store.iter_get(cid)) == data
    assert local_store.has(cid)
    assert local_store.size(cid) == len(data)


def test_put_stream_gives_same_cid_as_put(local_store: LocalStore, make_blob: Callable[[int], bytes]) -> None:
    data = make_blob(3 * MiB + 17)
    streamed = local_store.put_stream(data[i : i + 65536] for i in range(0, len(data), 65536))
    assert streamed == local_store.put(data) == cid_for_bytes(data)
    assert local_store.get(streamed) == data


def test_blob_is_stored_under_its_shard_with_no_temp_files_left(local_store: LocalStore) -> None:
    cid = local_store.put(b"record")
    local_store.put_stream([b"rec", b"ord2"])
    path = local_store.root / cid[-3:-1] / cid
    assert local_store.path_for(cid) == path
    assert path.read_bytes() == b"record"
    assert not [p for p in _files(local_store.root) if p.name.startswith(".tmp-")]


def test_put_twice_is_idempotent(local_store: LocalStore) -> None:
    assert local_store.put(b"same") == local_store.put(b"same")
    assert len(_files(local_store.root)) == 1


def test_concurrent_puts_of_same_blob_all_succeed(local_store: LocalStore, make_blob: Callable[[int], bytes]) -> None:
    data = make_blob(MiB)
    results: list[Cid] = []

    def put() -> None:
        results.append(local_store.put(data))

    threads = [threading.Thread(target=put) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results) == {cid_for_bytes(data)}
    assert local_store.get(results[0]) == data
    assert len(_files(local_store.root)) == 1


def test_get_fails_with_integrity_error_when_file_is_tampered(local_store: LocalStore) -> None:
    cid = local_store.put(b"blood type: O+")
    local_store.path_for(cid).write_bytes(b"blood type: AB")
    with pytest.raises(IntegrityError, match=cid):
        local_store.get(cid)
    with pytest.raises(IntegrityError):
        b"".join(local_store.iter_get(cid))


def test_get_fails_with_integrity_error_when_file_is_truncated(local_store: LocalStore) -> None:
    cid = local_store.put(b"0123456789")
    local_store.path_for(cid).write_bytes(b"01234")
    with pytest.raises(IntegrityError):
        local_store.get(cid)


def test_iter_get_never_delivers_a_whole_tampered_blob(tmp_path: Path, make_blob: Callable[[int], bytes]) -> None:
    store = LocalStore(tmp_path, chunk_size=1024)
    data = make_blob(10 * 1024)
    cid = store.put(data)
    tampered = bytearray(data)
    tampered[-1] ^= 1
    store.path_for(cid).write_bytes(bytes(tampered))
    received = bytearray()
    with pytest.raises(IntegrityError):
        for chunk in store.iter_get(cid):
            received += chunk
    assert len(received) < len(data)


def test_put_heals_a_tampered_copy(local_store: LocalStore) -> None:
    cid = local_store.put(b"allergies: none")
    local_store.path_for(cid).write_bytes(b"allergies: ????")
    assert local_store.put(b"allergies: none") == cid
    assert local_store.get(cid) == b"allergies: none"


@pytest.mark.parametrize("read", ["get", "iter_get", "size"])
def test_read_of_unknown_cid_raises_blob_not_found(local_store: LocalStore, read: str) -> None:
    with pytest.raises(BlobNotFound, match="not in"):
        getattr(local_store, read)(cid_for_bytes(b"never stored"))
    assert not local_store.has(cid_for_bytes(b"never stored"))


def test_dag_pb_cid_is_never_held_locally(local_store: LocalStore) -> None:
    assert not local_store.has(DAG_PB_CID)
    with pytest.raises(BlobNotFound, match="raw"):
        local_store.get(DAG_PB_CID)


@pytest.mark.parametrize("garbage", ["../../etc/passwd", "bafkrei", "", "Qmfoo"])
def test_malformed_cid_is_rejected_before_touching_disk(local_store: LocalStore, garbage: str) -> None:
    for call in (local_store.get, local_store.has, local_store.remove, local_store.size, local_store.iter_get):
        with pytest.raises(InvalidRecord):
            call(Cid(garbage))


def test_remove_is_idempotent(local_store: LocalStore) -> None:
    cid = local_store.put(b"to be erased")
    local_store.remove(cid)
    local_store.remove(cid)
    local_store.remove(cid_for_bytes(b"never stored"))
    assert not local_store.has(cid)
    with pytest.raises(BlobNotFound):
        local_store.get(cid)


def test_put_stream_failure_leaves_no_partial_file(local_store: LocalStore) -> None:
    def broken() -> Iterator[bytes]:
        yield b"first half"
        raise RuntimeError("source died")

    with pytest.raises(RuntimeError, match="source died"):
        local_store.put_stream(broken())
    assert _files(local_store.root) == []


def test_crash_before_rename_leaves_no_blob(local_store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(src: object, dst: object) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(StorageUnavailable):
        local_store.put(b"half-written")
    monkeypatch.undo()
    assert _files(local_store.root) == []
    assert not local_store.has(cid_for_bytes(b"half-written"))


@pytest.mark.parametrize("failing_call", ["write", "fsync"])
def test_put_fails_with_storage_unavailable_when_disk_is_full(
    local_store: LocalStore, monkeypatch: pytest.MonkeyPatch, failing_call: str
) -> None:
    def disk_full(*args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, failing_call, disk_full)
    with pytest.raises(StorageUnavailable, match="disk full.*nothing was written"):
        local_store.put(b"lab results")
    with pytest.raises(StorageUnavailable, match="disk full"):
        local_store.put_stream([b"lab ", b"results"])
    monkeypatch.undo()
    assert _files(local_store.root) == []


def test_put_fails_with_storage_unavailable_when_root_is_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(StorageUnavailable, match="nothing was written"):
        LocalStore(blocker / "blobs")


def _peak_while(run: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_streaming_a_64_mib_blob_uses_bounded_memory(local_store: LocalStore) -> None:
    chunk = bytes(range(256)) * 4096

    def chunks() -> Iterator[bytes]:
        for i in range(64):
            yield bytes([i]) + chunk[1:]

    cid: list[Cid] = []
    assert _peak_while(lambda: cid.append(local_store.put_stream(chunks()))) < 8 * MiB
    assert local_store.size(cid[0]) == 64 * MiB
    total = 0

    def read_all() -> None:
        nonlocal total
        for piece in local_store.iter_get(cid[0]):
            total += len(piece)

    assert _peak_while(read_all) < 8 * MiB
    assert total == 64 * MiB


def test_group_commit_defers_only_its_own_threads_blobs_until_the_barrier(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    other: list[str] = []
    with store.group_commit() as barrier:
        cids = [store.put(f"blob {i}".encode()) for i in range(6)]
        worker = threading.Thread(target=lambda: other.append(store.put(b"another thread's blob")))
        worker.start()
        worker.join()
        assert barrier() == 6  # the other thread's put was durable on its own: it never waited
        assert barrier() == 0
        store.include_in_barrier(cids[0])  # a blob an interrupted run stored: synced by this barrier too
        assert barrier() == 1
        cids.append(store.put(b"after the barrier"))
    assert store.barrier() == 0  # leaving the block ran the barrier for the last one
    assert [store.get(cid) for cid in cids] == [f"blob {i}".encode() for i in range(6)] + [b"after the barrier"]
    assert store.get(other[0]) == b"another thread's blob"
    with store.group_commit(), pytest.raises(RuntimeError):
        with store.group_commit():
            pass


def test_a_shard_directory_removed_behind_the_store_is_made_again(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    cid = store.put(b"first")
    shard = store.path_for(cid).parent
    store.remove(cid)
    shard.rmdir()  # another process (an operator's cleanup) removed the empty shard
    assert store.get(store.put(b"first")) == b"first"
