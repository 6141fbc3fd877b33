"""A real disk that fills up: a small tmpfs mounted for one test, filled to ENOSPC on demand.

Mounting needs root (or CAP_SYS_ADMIN); elsewhere the tests that use it skip, saying so. Full is
full for real: every write that needs a new page of the filesystem fails with ENOSPC from the
kernel, as on a disk that filled up, until `free` deletes the filler.
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


class SmallDisk:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._filler = root / ".filler"

    def fill(self) -> None:
        """Write a filler file until the kernel refuses (ENOSPC)."""
        with open(self._filler, "ab", buffering=0) as filler:
            for block in (1 << 20, 4096, 1):
                chunk = b"\0" * block
                while True:
                    try:
                        filler.write(chunk)
                    except OSError as exc:
                        assert exc.errno == errno.ENOSPC, exc
                        break

    def free(self) -> None:
        self._filler.unlink(missing_ok=True)

    def leftovers(self) -> list[Path]:
        """Temporary and torn files a failed write left behind (none may be)."""
        return sorted(p for p in self.root.rglob("*") if p.is_file() and p.name != ".filler"
                      and (p.name.startswith(".") or p.name.endswith(".tmp")))

    def full_before(self, owner: Any, name: str, monkeypatch: pytest.MonkeyPatch, *, call: int = 1) -> None:
        """Fill the disk right before the `call`-th call of `owner.name` from now (once)."""
        original: Callable[..., Any] = getattr(owner, name)
        calls = [0]

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            if calls[0] == call:
                self.fill()
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapped)


def no_growth_during(owner: Any, name: str, path: Path, monkeypatch: pytest.MonkeyPatch, *, call: int = 1) -> None:
    """During the `call`-th call of `owner.name` from now, no file may grow past `path`'s size then
    (RLIMIT_FSIZE, SIGXFSZ ignored: the kernel fails the write with EFBIG). For an append to a file
    whose last page still has room, which a full tmpfs would let through."""
    original: Callable[..., Any] = getattr(owner, name)
    calls = [0]

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] != call:
            return original(*args, **kwargs)
        limits = resource.getrlimit(resource.RLIMIT_FSIZE)
        handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size, limits[1]))
        try:
            return original(*args, **kwargs)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, limits)
            signal.signal(signal.SIGXFSZ, handler)

    monkeypatch.setattr(owner, name, wrapped)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    root = tmp_path / "small-disk"
    root.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(root)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"a full disk needs a tmpfs mount (root): {mounted.stderr.decode().strip()}")
    try:
        yield SmallDisk(root)
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)
        os.sync()
