"""Finding and stopping the background processes the project starts (Anvil, Kubo, custodians).

A stop also reaps the process when it is our own child, so a zombie never makes a stopped node
look alive (and nothing waits out a timeout for a process that is already gone).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child: init reaps it


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def alive(pid: int, *, marker: str | None = None) -> bool:
    """Whether `pid` runs (not a zombie) and, where /proc shows it, its command line mentions `marker`.

    The marker guards against a recycled pid: a stale pidfile must never make us signal a stranger.
    """
    if pid <= 0:
        return False
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process: not one we started
    if _is_zombie(pid):
        return False
    if marker is not None:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return True  # no /proc (macOS): trust the pidfile
        return marker in cmdline
    return True


def _group_alive(pgid: int) -> bool:
    _reap(pgid)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pgid) or _others_in_group(pgid)


def _others_in_group(pgid: int) -> bool:
    """Whether a live process other than the (zombie) leader is in process group `pgid` (Linux)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == pgid:
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _wait(check: Callable[[], bool], deadline: float) -> bool:
    while time.monotonic() < deadline:
        if not check():
            return True
        time.sleep(0.05)
    return False


def stop_group(pgid: int, *, timeout: float = 10.0) -> None:
    """SIGTERM process group `pgid` (e.g. Anvil's launcher and binary), SIGKILL what is left."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        _reap(pgid)
        return
    if _wait(lambda: _group_alive(pgid), time.monotonic() + timeout):
        return
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _wait(lambda: _group_alive(pgid), time.monotonic() + 5)


def stop_process(pid: int, *, timeout: float = 10.0) -> None:
    """SIGTERM one process (e.g. a Kubo daemon), SIGKILL it if it lingers."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        _reap(pid)
        return
    if _wait(lambda: alive(pid), time.monotonic() + timeout):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _wait(lambda: alive(pid), time.monotonic() + 5)
