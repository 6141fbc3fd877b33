"""An error `settle_forks` does not expect, after it has stopped the validators it settles.

The supervisor thread catches `ChainUnavailable` and `RpcRefused` only. Here the geth binary the
network was started from is gone when the settle restarts the rewound validators (a `make clean`
or a rebuild while the network runs: running nodes are unaffected). `subprocess.Popen` raises
FileNotFoundError, the thread dies with the two validators stopped, and `supervised()` ends as if
all went well: nothing runs them again, and two of four validators cannot seal.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from ehr_client.dev.geth import GETH_BIN_ENV, CliqueNetwork, find_geth_binary
from tests.network._chain import wait_until
from tests.network.test_equal_forks import equal_forks  # noqa: F401  (fixture)


@pytest.fixture
def removable_geth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = tmp_path / "bin" / "geth"
    copy.parent.mkdir()
    shutil.copy2(find_geth_binary(), copy)
    monkeypatch.setenv(GETH_BIN_ENV, str(copy))
    return copy


def _supervisor_alive() -> bool:
    return any(thread.name == "clique-supervisor" and thread.is_alive() for thread in threading.enumerate())


def test_a_settle_that_cannot_restart_a_validator_leaves_a_running_supervisor(
        removable_geth: Path, request: pytest.FixtureRequest) -> None:
    network: CliqueNetwork = request.getfixturevalue("equal_forks")  # after the binary is in place
    binaries = {str(node.binary) for node in network.nodes.values()}
    assert binaries == {str(removable_geth)}, binaries
    removable_geth.unlink()
    outcome, alive, stopped = "ended cleanly", False, []
    try:
        with network.supervised():
            wait_until(lambda: not all(node.running for node in network.validators),
                       "the supervisor stopped a validator to settle it", 60)
            deadline = time.monotonic() + 30
            while _supervisor_alive() and time.monotonic() < deadline:
                time.sleep(0.2)
            alive = _supervisor_alive()
            stopped = [node.name for node in network.validators if not node.running]
    except Exception as exc:  # noqa: BLE001
        outcome = f"raised {exc!r}"
    print(f"supervised() {outcome}; supervisor alive 30 s after the settle began: {alive}; stopped: {stopped}")
    assert alive or outcome != "ended cleanly", \
        f"the supervisor died silently with {stopped} stopped"
