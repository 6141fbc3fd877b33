"""geth nodes a process starts (not detached) do not outlive it, even when it is killed with SIGKILL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from ehr_client.dev import processes

CHILD = """
import os, sys
from pathlib import Path
from ehr_client.dev.geth import CliqueNetwork
network = CliqueNetwork.create(Path(sys.argv[1]), validators=1)
network.start()
print(network.validators[0].pid, flush=True)
os.kill(os.getpid(), 9)
"""


def test_nodes_stop_when_their_parent_is_killed(tmp_path: Path) -> None:
    child = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "net")], capture_output=True, text=True,
                           timeout=120, env=os.environ.copy())
    assert child.returncode == -9, child.stderr
    pid = int(child.stdout.strip())
    deadline = time.monotonic() + 30
    while processes.alive(pid, marker="geth") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not processes.alive(pid, marker="geth")
    assert "Blockchain stopped" in (tmp_path / "net" / "nodes" / "validator-1" / "geth.log").read_text()  # clean exit
