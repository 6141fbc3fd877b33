"""Real Kubo daemons on loopback for any test that needs IPFS (registered in tests/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ehr_client.errors import ConfigError
from ehr_client.storage.kubo import KuboDaemon, find_kubo_binary

REQUIRE_KUBO_ENV = "EHR_REQUIRE_KUBO"


@pytest.fixture(scope="session")
def kubo_binary() -> Path:
    """The Kubo binary; skips (or fails, with EHR_REQUIRE_KUBO=1) when there is none."""
    try:
        return find_kubo_binary()
    except ConfigError as exc:
        if os.environ.get(REQUIRE_KUBO_ENV) == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def kubo(kubo_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KuboDaemon]:
    """One offline Kubo daemon for the whole session, on free 127.0.0.1 ports and a fresh repo."""
    with KuboDaemon(tmp_path_factory.mktemp("kubo") / "repo", binary=kubo_binary) as daemon:
        yield daemon


@pytest.fixture
def start_kubo(kubo_binary: Path, tmp_path: Path) -> Iterator[Callable[..., KuboDaemon]]:
    """Factory for extra daemons a test may stop or break; all are stopped at teardown."""
    started: list[KuboDaemon] = []

    def start(repo: Path | None = None, *, offline: bool = True) -> KuboDaemon:
        daemon = KuboDaemon(repo or tmp_path / f"repo{len(started)}", binary=kubo_binary, offline=offline)
        started.append(daemon)
        return daemon.start()

    yield start
    for daemon in started:
        daemon.stop()


