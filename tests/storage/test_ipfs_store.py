from __future__ import annotations

import json
import socket
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from ehr_client.errors import (
    BlobNotFound,
    ConfigError,
    IntegrityError,
    InvalidRecord,
    StorageError,
    StorageUnavailable,
)
from ehr_client.storage.base import BlobStore
from ehr_client.storage.cid import DAG_PB, RAW, Cid, cid_for_bytes, cid_from_digest, decode_cid
from ehr_client.storage.ipfs import CHUNK_SIZE, IpfsStore, api_base_url
from ehr_client.storage.kubo import KuboDaemon

MiB = 1 << 20
UNKNOWN = cid_for_bytes(b"never stored anywhere")
needs_kubo = pytest.mark.kubo


def _local_refs(daemon: KuboDaemon) -> set[str]:
    response = httpx.post(f"{daemon.api_url}/api/v0/refs/local", timeout=10, trust_env=False)
    return {json.loads(line)["Ref"] for line in response.text.splitlines() if line.strip()}


@pytest.fixture
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback socket that accepts connections (via its backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def test_ipfs_store_is_a_blob_store() -> None:
    assert isinstance(IpfsStore("http://127.0.0.1:5001"), BlobStore)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:5001", "http://127.0.0.1:5001"),
        ("http://127.0.0.1:5001/", "http://127.0.0.1:5001"),
        ("http://127.0.0.1:5001/api/v0", "http://127.0.0.1:5001"),
        ("/ip4/127.0.0.1/tcp/5001", "http://127.0.0.1:5001"),
        ("/ip6/::1/tcp/5001", "http://[::1]:5001"),
    ],
)
def test_api_url_accepts_urls_and_multiaddrs(given: str, expected: str) -> None:
    assert api_base_url(given) == expected


@pytest.mark.parametrize("bad", ["", "127.0.0.1:5001", "ftp://127.0.0.1", "/ip4/127.0.0.1/udp/5001"])
def test_api_url_rejects_nonsense(bad: str) -> None:
    with pytest.raises(ConfigError):
        IpfsStore(bad)


def test_malformed_cid_is_rejected_without_calling_the_node(silent_server: str) -> None:
    store = IpfsStore(silent_server, timeout=5)
    for call in (store.get, store.has, store.remove, store.size, store.iter_get):
        with pytest.raises(InvalidRecord):
            call(Cid("../../api/v0/shutdown"))


@needs_kubo
def test_put_then_get_round_trips(ipfs_store: IpfsStore) -> None:
    cid = ipfs_store.put(b"hello world\n")
    assert cid == "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
    assert ipfs_store.get(cid) == b"hello world\n"
    assert b"".join(ipfs_store.iter_get(cid)) == b"hello world\n"
    assert ipfs_store.has(cid)
    assert ipfs_store.size(cid) == 12


@needs_kubo
@pytest.mark.parametrize("size", [0, 1, 4096, CHUNK_SIZE])
def test_put_returns_local_cid_for_single_chunk_blobs(
    ipfs_store: IpfsStore, make_blob: Callable[[int], bytes], size: int
) -> None:
    data = make_blob(size)
    assert ipfs_store.put(data) == cid_for_bytes(data)
    assert ipfs_store.put_stream([data[:7], data[7:]]) == cid_for_bytes(data)
    assert ipfs_store.get(cid_for_bytes(data)) == data


@needs_kubo
def test_multi_chunk_blob_gets_dag_pb_cid_and_round_trips(
    ipfs_store: IpfsStore, make_blob: Callable[[int], bytes]
) -> None:
    data = make_blob(CHUNK_SIZE + 1)
    cid = ipfs_store.put(data)
    assert decode_cid(cid).codec == DAG_PB
    assert ipfs_store.get(cid) == data
    assert ipfs_store.size(cid) == len(data)
    assert ipfs_store.put_stream(iter([data])) == cid


@needs_kubo
def test_has_is_false_after_remove_and_remove_is_idempotent(ipfs_store: IpfsStore) -> None:
    cid = ipfs_store.put(b"discharge summary")
    ipfs_store.remove(cid)
    assert not ipfs_store.has(cid)
    ipfs_store.remove(cid)
    ipfs_store.remove(UNKNOWN)
    with pytest.raises(BlobNotFound):
        ipfs_store.get(cid)


@needs_kubo
def test_remove_deletes_every_block_of_a_multi_chunk_blob(
    kubo: KuboDaemon, ipfs_store: IpfsStore, make_blob: Callable[[int], bytes]
) -> None:
    cid = ipfs_store.put(make_blob(3 * CHUNK_SIZE))
    response = httpx.post(
        f"{kubo.api_url}/api/v0/refs", params={"arg": cid, "recursive": "true"}, timeout=10, trust_env=False
    )
    leaves = {json.loads(line)["Ref"] for line in response.text.splitlines()}
    blocks = leaves | {cid_from_digest(decode_cid(cid).digest)}
    assert len(blocks) == 4
    assert blocks <= _local_refs(kubo)
    ipfs_store.remove(cid)
    assert blocks & _local_refs(kubo) == set()


@needs_kubo
def test_remove_keeps_blocks_another_pinned_blob_shares(
    ipfs_store: IpfsStore, make_blob: Callable[[int], bytes]
) -> None:
    leaf = make_blob(CHUNK_SIZE)
    big = ipfs_store.put(leaf + make_blob(100))
    small = ipfs_store.put(leaf)
    ipfs_store.remove(small)
    assert not ipfs_store.has(small)
    assert ipfs_store.get(big)[:CHUNK_SIZE] == leaf


@needs_kubo
@pytest.mark.parametrize("read", ["get", "iter_get", "size"])
def test_read_of_unknown_cid_raises_blob_not_found_at_once(ipfs_store: IpfsStore, read: str) -> None:
    started = time.monotonic()
    with pytest.raises(BlobNotFound, match=UNKNOWN):
        getattr(ipfs_store, read)(UNKNOWN)
    assert not ipfs_store.has(UNKNOWN)
    assert time.monotonic() - started < 2


@needs_kubo
def test_streaming_20_mib_round_trips_with_bounded_memory(ipfs_store: IpfsStore) -> None:
    pattern = bytes(range(256)) * 4096

    def chunks() -> Iterator[bytes]:
        for i in range(20):
            yield bytes([i]) + pattern[1:]

    tracemalloc.start()
    try:
        cid = ipfs_store.put_stream(chunks())
        upload_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        received = 0
        for piece in ipfs_store.iter_get(cid):
            i, offset = divmod(received, MiB)
            assert piece[:1] == (bytes([i]) if offset == 0 else pattern[offset : offset + 1])
            received += len(piece)
        download_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert received == 20 * MiB
    assert ipfs_store.size(cid) == 20 * MiB
    assert upload_peak < 8 * MiB
    assert download_peak < 8 * MiB


@needs_kubo
def test_get_fails_when_daemon_down(start_kubo: Callable[..., KuboDaemon]) -> None:
    daemon = start_kubo()
    store = IpfsStore(daemon.api_url, timeout=2, retries=1, backoff=0.01)
    cid = store.put(b"vaccination record")
    url = daemon.api_url
    daemon.stop()
    for call in (store.get, store.has, store.size, store.remove, store.iter_get):
        with pytest.raises(StorageUnavailable, match=f"{url}.*start the node") as info:
            call(cid)
        assert isinstance(info.value, ConnectionError)
    with pytest.raises(StorageUnavailable, match="start the node"):
        store.put(b"x")
    with pytest.raises(StorageUnavailable, match="start the node"):
        store.put_stream([b"x"])


@needs_kubo
def test_blobs_survive_a_daemon_restart_on_the_same_repo(start_kubo: Callable[..., KuboDaemon], tmp_path: Path) -> None:
    daemon = start_kubo(tmp_path / "node")
    cid = IpfsStore(daemon.api_url).put(b"persisted")
    daemon.stop()
    daemon.start()
    with IpfsStore(daemon.api_url) as store:
        assert store.has(cid)
        assert store.get(cid) == b"persisted"


def test_get_fails_when_port_is_closed(free_port: int) -> None:
    store = IpfsStore(f"http://127.0.0.1:{free_port}", timeout=1, retries=2, backoff=0.01)
    with pytest.raises(StorageUnavailable, match=f"127.0.0.1:{free_port}.*after 3 attempt"):
        store.get(UNKNOWN)


def test_get_times_out_when_node_does_not_answer(silent_server: str) -> None:
    store = IpfsStore(silent_server, timeout=0.3, retries=1, backoff=0.01)
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="did not answer cat within 0.3s"):
        store.get(UNKNOWN)
    assert time.monotonic() - started < 3


def _mock_store(handler: Callable[[httpx.Request], httpx.Response], **options: float) -> IpfsStore:
    return IpfsStore("http://127.0.0.1:9", transport=httpx.MockTransport(handler), backoff=0.0, **options)  # type: ignore[arg-type]


def test_put_is_retried_after_transient_5xx() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        calls.append(request.url.path)
        if len(calls) < 3:
            return httpx.Response(503, text="busy")
        return httpx.Response(200, json={"Name": "blob", "Hash": cid_for_bytes(b"data"), "Size": "4"})

    assert _mock_store(handler, retries=2).put(b"data") == cid_for_bytes(b"data")
    assert calls == ["/api/v0/add"] * 3


def test_kubo_error_is_not_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(500, json={"Message": "this dag node is a directory", "Code": 0, "Type": "error"})

    with pytest.raises(StorageError, match="directory") as info:
        _mock_store(handler, retries=3).get(UNKNOWN)
    assert not isinstance(info.value, (StorageUnavailable, BlobNotFound))
    assert calls == [1]


def test_put_stream_is_not_replayed_once_the_stream_was_consumed() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        calls.append(1)
        return httpx.Response(503, text="busy")

    with pytest.raises(StorageUnavailable):
        _mock_store(handler, retries=3).put_stream(iter([b"part one", b"part two"]))
    assert calls == [1]


def test_put_rejects_a_node_that_returns_the_wrong_cid() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"Name": "blob", "Hash": UNKNOWN, "Size": "4"})

    with pytest.raises(IntegrityError, match="misconfigured or faulty"):
        _mock_store(handler).put(b"data")


def test_put_rejects_a_malformed_cid_from_the_node() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"Name": "blob", "Hash": "QmNotV1", "Size": "4"})

    with pytest.raises(InvalidRecord):
        _mock_store(handler).put(b"data")


@pytest.mark.parametrize("read", ["get", "iter_get"])
def test_read_detects_bytes_that_do_not_match_a_raw_cid(read: str) -> None:
    cid = cid_for_bytes(b"the real record")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"a forged record", headers={"X-Content-Length": "15"})

    store = _mock_store(handler)
    with pytest.raises(IntegrityError, match=cid):
        b"".join(getattr(store, read)(cid))


def test_read_detects_a_truncated_multi_chunk_blob() -> None:
    cid = Cid("bafybeid72rlr23lj44nmbqecty5trfjddqu4g4fhfrklplndlp2hmrh2f4")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * 1000, headers={"X-Content-Length": "300000"})

    store = _mock_store(handler)
    with pytest.raises(IntegrityError, match="truncated"):
        store.get(cid)
    with pytest.raises(IntegrityError, match="1000 bytes where 300000"):
        b"".join(store.iter_get(cid))
    assert decode_cid(cid).codec != RAW
