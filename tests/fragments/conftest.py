"""Fixtures for the fragment tests: LocalStore node sets, and five real Kubo daemons for the package.

The daemons start once for the whole `tests/fragments` package (about 0.5 s each) on fixed
loopback API ports, so a stopped daemon comes back on the same URL with the same repo; every
test that uses them gets all five running again afterwards.
"""

from __future__ import annotations

import random
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import settings

from ehr_client.storage.base import BlobStore
from ehr_client.storage.fragmented import FragmentedStore
from ehr_client.storage.ipfs import IpfsStore
from ehr_client.storage.kubo import KuboDaemon
from ehr_client.storage.local import LocalStore
from tests.client import conftest as client_fixtures

# The client tests' chain fixtures: a suite deployed with web3 on Ape's Anvil, identities, a FHIR resource.
rpc_url = client_fixtures.rpc_url
ids = client_fixtures.ids
suite = client_fixtures.suite
observation = client_fixtures.observation

FIXED = settings(derandomize=True, database=None, deadline=None, max_examples=60)
NODE_IDS = ("n0", "n1", "n2", "n3", "n4")


@pytest.fixture
def make_blob(request: pytest.FixtureRequest) -> Callable[[int], bytes]:
    """Pseudo-random bytes, fixed per test (a new blob on every call)."""
    rng = random.Random(f"fragments:{request.node.nodeid}")
    return rng.randbytes


@pytest.fixture
def local_nodes(tmp_path: Path) -> dict[str, LocalStore]:
    """Five LocalStore nodes plus one spare, `n0`..`n4` and `spare`."""
    return {node_id: LocalStore(tmp_path / "nodes" / node_id) for node_id in (*NODE_IDS, "spare")}


@pytest.fixture
def local_store(local_nodes: dict[str, LocalStore]) -> FragmentedStore:
    """k=3 of n=5 over the six LocalStore nodes, with small segments so blobs span several."""
    return FragmentedStore(local_nodes, k=3, n=5, segment_size=3 * 1024)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@dataclass
class KuboCluster:
    """Five Kubo daemons by node id, each reachable as an IpfsStore on a fixed loopback port."""

    daemons: dict[str, KuboDaemon]
    startup_seconds: float
    stores: dict[str, IpfsStore] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.stores = {
            node_id: IpfsStore(f"http://127.0.0.1:{d.api_port}", timeout=10.0, retries=1)
            for node_id, d in self.daemons.items()
        }

    def fragmented(self, *, extra: dict[str, BlobStore] | None = None, replace: dict[str, BlobStore] | None = None,
                   **options: int) -> FragmentedStore:
        nodes: dict[str, BlobStore] = {**self.stores, **(replace or {}), **(extra or {})}
        return FragmentedStore(nodes, k=options.pop("k", 3), n=options.pop("n", 5), **options)

    def stop(self, *node_ids: str) -> None:
        for node_id in node_ids:
            self.daemons[node_id].stop()

    def start(self, *node_ids: str, wipe: bool = False) -> None:
        for node_id in node_ids:
            daemon = self.daemons[node_id]
            if wipe:
                daemon.stop()
                shutil.rmtree(daemon.repo)
            daemon.start()

    def restore(self) -> None:
        self.start(*(node_id for node_id, d in self.daemons.items() if not d.running))


@pytest.fixture(scope="package")
def kubo_cluster(kubo_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KuboCluster]:
    root = tmp_path_factory.mktemp("kubo-cluster")
    daemons = {node_id: KuboDaemon(root / node_id, binary=kubo_binary, api_port=_free_port()) for node_id in NODE_IDS}
    started = time.perf_counter()
    try:
        for daemon in daemons.values():
            daemon.start()
        cluster = KuboCluster(daemons, time.perf_counter() - started)
        try:
            yield cluster
        finally:
            for store in cluster.stores.values():
                store.close()
    finally:
        for daemon in daemons.values():
            daemon.stop()


@pytest.fixture
def cluster(kubo_cluster: KuboCluster) -> Iterator[KuboCluster]:
    """The package's five daemons, all running; any the test stopped are restarted after it."""
    kubo_cluster.restore()
    yield kubo_cluster
    kubo_cluster.restore()
