"""Hanging a server for fault tests: SIGSTOP, then wait until the kernel has stopped every thread.

A signal is delivered asynchronously: a request sent right after `kill` returns can still be
answered by a thread that had not stopped yet (seen on a loaded machine with Anvil), and the test
then proves nothing about a hung node.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def _stopped(pid: int) -> bool:
    tasks = Path(f"/proc/{pid}/task")
    try:
        states = [(t / "stat").read_text().rsplit(")", 1)[-1].split()[0] for t in tasks.iterdir()]
    except OSError:
        return False
    return bool(states) and all(state in ("T", "t") for state in states)


def hang(pid: int, *, group: bool = False, timeout: float = 10.0) -> None:
    """SIGSTOP `pid` (its whole process group with `group`) and return once every thread is stopped."""
    (os.killpg if group else os.kill)(pid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    while not _stopped(pid):
        if time.monotonic() > deadline:
            raise RuntimeError(f"process {pid} did not stop within {timeout} s of SIGSTOP")
        time.sleep(0.01)
