"""Fixtures for the blob-store tests: a real Kubo daemon on loopback, stores, blob factories."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ehr_client.storage.ipfs import IpfsStore
from ehr_client.storage.kubo import KuboDaemon
from ehr_client.storage.local import LocalStore

@pytest.fixture
def ipfs_store(kubo: KuboDaemon) -> Iterator[IpfsStore]:
    with IpfsStore(kubo.api_url, timeout=10.0, retries=1) as store:
        yield store


@pytest.fixture
def local_store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "blobs")


@pytest.fixture
def make_blob(request: pytest.FixtureRequest) -> Callable[[int], bytes]:
    """Pseudo-random bytes, fixed per test and distinct between tests (a new blob on every call)."""
    rng = random.Random(f"20261123:{request.node.nodeid}")
    return rng.randbytes
