"""FragmentedStore over five real Kubo daemons: node loss, a clear failure past n - k, repair."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ehr_client.errors import StorageUnavailable
from ehr_client.storage._fragment_codec import HEADER_SIZE
from ehr_client.storage.cid import DAG_PB, decode_cid
from ehr_client.storage.fragmented import FragmentStatus
from ehr_client.storage.local import LocalStore
from tests.fragments.conftest import KuboCluster
from tests.hang import hang

pytestmark = pytest.mark.kubo

MiB = 1 << 20


def test_read_survives_two_stopped_nodes_fails_clearly_on_a_third_and_repair_restores_all(
    cluster: KuboCluster, make_blob: Callable[[int], bytes]
) -> None:
    store = cluster.fragmented()
    data = make_blob(MiB)
    cid = store.put(data)
    manifest = store.manifest(cid)
    nodes = [f.node for f in manifest.fragments]
    assert decode_cid(manifest.fragments[0].cid).codec == DAG_PB  # fragments of 1/3 MiB span several IPFS blocks

    cluster.stop(nodes[0], nodes[1])
    assert cluster.fragmented().get(cid) == data  # a fresh store: the manifest too comes from surviving nodes

    cluster.stop(nodes[2])
    with pytest.raises(StorageUnavailable) as caught:
        cluster.fragmented().get(cid)
    message = str(caught.value)
    assert "only 2 of 5 fragments" in message and "3 are needed" in message
    assert all(f"fragment {i} on {nodes[i]}: unreachable" in message for i in range(3))

    cluster.start(nodes[2])  # same repo, same port: its fragment is back
    assert store.get(cid) == data
    cluster.start(nodes[0])
    cluster.start(nodes[1], wipe=True)  # this one comes back with an empty disk
    before = store.check(cid)
    assert before.intact == 4 and before.fragments[1].status is FragmentStatus.MISSING
    assert before.manifest_missing == (nodes[1],)

    result = store.repair(cid)
    assert result.manifest_cid == cid
    assert result.restored == ((1, nodes[1]),) and result.manifest_copies == (nodes[1],)
    after = store.check(cid)
    assert after.intact == 5 and after.complete
    assert cluster.stores[nodes[1]].has(manifest.fragments[1].cid)


def test_streamed_blob_over_many_segments_survives_two_stopped_nodes_and_is_repaired_in_place(
    cluster: KuboCluster, make_blob: Callable[[int], bytes]
) -> None:
    store = cluster.fragmented(segment_size=3 * 64 * 1024)
    data = make_blob(2 * MiB + 7)
    cid = store.put_stream(data[i:i + 100_000] for i in range(0, len(data), 100_000))
    manifest = store.manifest(cid)
    assert manifest.layout.segments == 11

    cluster.stop(manifest.fragments[3].node, manifest.fragments[4].node)
    assert b"".join(store.iter_get(cid)) == data
    cluster.restore()

    cluster.stores[manifest.fragments[2].node].remove(manifest.fragments[2].cid)  # e.g. unpinned and collected
    assert store.check(cid).fragments[2].status is FragmentStatus.MISSING
    result = store.repair(cid)
    assert result.restored == ((2, manifest.fragments[2].node),)
    assert result.after.complete


def test_no_node_holds_more_than_its_share(cluster: KuboCluster, make_blob: Callable[[int], bytes]) -> None:
    store = cluster.fragmented()
    size = 900_000
    cid = store.put(make_blob(size))
    manifest = store.manifest(cid)
    fragment_cids = {f.cid for f in manifest.fragments}
    for entry in manifest.fragments:
        node = cluster.stores[entry.node]
        assert node.size(entry.cid) == entry.size == size // 3 + HEADER_SIZE
        assert {c for c in fragment_cids if node.has(c)} == {entry.cid}
        assert node.has(cid)  # and a replica of the small manifest


def test_write_with_two_nodes_down_fails_and_stores_nothing(
    cluster: KuboCluster, make_blob: Callable[[int], bytes]
) -> None:
    store = cluster.fragmented()
    cluster.stop("n1", "n3")
    with pytest.raises(StorageUnavailable, match="only 3 of 5 storage nodes answer, and a write needs 5"):
        store.put(make_blob(10_000))


def test_write_moves_to_a_spare_node_when_one_is_down(
    cluster: KuboCluster, make_blob: Callable[[int], bytes], tmp_path: Path
) -> None:
    store = cluster.fragmented(extra={"spare": LocalStore(tmp_path / "spare")})
    cluster.stop("n2")
    data = make_blob(50_000)
    cid = store.put(data)
    assert "n2" not in store.manifest(cid).node_ids
    cluster.restore()
    assert store.get(cid) == data
    report = store.check(cid)
    assert report.intact == 5 and report.manifest_missing == ("n2",)  # n2 was down when the blob was written
    assert store.repair(cid).after.complete


def test_altered_fragment_on_a_local_node_among_kubo_nodes_is_routed_around_and_repaired(
    cluster: KuboCluster, make_blob: Callable[[int], bytes], tmp_path: Path
) -> None:
    local = LocalStore(tmp_path / "local-node")
    store = cluster.fragmented(replace={"n4": local})
    data = make_blob(400_000)
    cid = store.put(data)
    entry = next(f for f in store.manifest(cid).fragments if f.node == "n4")
    path = local.path_for(entry.cid)
    tampered = bytearray(path.read_bytes())
    tampered[HEADER_SIZE + 1000] ^= 0xFF
    path.write_bytes(bytes(tampered))
    others = [f.node for f in store.manifest(cid).fragments if f.node != "n4"]
    cluster.stop(others[0])  # the altered fragment would be needed if it were trusted

    assert store.get(cid) == data
    report = store.check(cid)
    assert report.fragments[entry.index].status is FragmentStatus.CORRUPT and report.intact == 3

    cluster.restore()
    result = store.repair(cid)
    assert (entry.index, "n4") in result.restored and result.after.complete
    assert path.read_bytes() != bytes(tampered)


def test_remove_deletes_fragments_and_manifests_and_keeps_the_manifest_while_a_node_is_down(
    cluster: KuboCluster, make_blob: Callable[[int], bytes]
) -> None:
    store = cluster.fragmented()
    cid = store.put(make_blob(300_000))
    manifest = store.manifest(cid)
    down = manifest.fragments[0].node
    cluster.stop(down)
    with pytest.raises(StorageUnavailable, match=f"removed only partly: {down}"):
        store.remove(cid)
    assert all(cluster.stores[node].has(cid) for node in manifest.node_ids - {down})

    cluster.restore()
    store.remove(cid)
    for node_id, node in cluster.stores.items():
        assert not node.has(cid), node_id
        assert not any(node.has(f.cid) for f in manifest.fragments), node_id
    assert not store.has(cid)


def test_read_uses_the_first_k_fragments_and_does_not_wait_for_hung_nodes(
    cluster: KuboCluster, make_blob: Callable[[int], bytes]
) -> None:
    store = cluster.fragmented()  # each IPFS request may take up to 10 s before it times out
    data = make_blob(200_000)
    cid = store.put(data)
    hung = [f.node for f in store.manifest(cid).fragments[:2]]
    pids = [pid for node in hung if (pid := cluster.daemons[node].pid) is not None]
    assert len(pids) == 2
    try:
        for pid in pids:
            hang(pid)  # alive but silent: connections open, no answers
        started = time.monotonic()
        assert cluster.fragmented().get(cid) == data
        assert time.monotonic() - started < 5
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
