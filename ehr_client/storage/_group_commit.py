"""Group commit for `LocalStore`: many blobs made durable by one barrier instead of an fsync each.

Inside `LocalStore.group_commit()`, blobs the calling thread stores are written (appended to its
pack, or a file renamed into place) without fsync; the block's `barrier()` then makes all of them durable at once, with one
`syncfs(2)` on the store's filesystem (or, where that call is missing or only a few blobs wait, an
fsync per blob and per directory). Until the barrier a crash may lose any of them, or leave a
file that does not hash to its name: a caller must not let anything refer to them durably before
it (`ehr_client.batch` journals them, then calls the barrier before a batch is anchored), and
must check them again after a crash (reads check every blob against its CID anyway).
"""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path

_FEW = 4  # at most this many blobs waiting: one fsync each beats flushing the whole filesystem


def _load_syncfs() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return function


_SYNCFS = _load_syncfs()


def fsync_path(path: Path, *, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class GroupCommit:
    """The blobs one thread stored since its last barrier, per store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._local = threading.local()

    def waiting(self) -> list[Path] | None:
        """This thread's blobs awaiting the barrier, or None when the thread is not in a group."""
        return getattr(self._local, "paths", None)

    def begin(self) -> None:
        if self.waiting() is not None:
            raise RuntimeError("group commits of one store do not nest")
        self._local.paths = []
        self._local.blobs = 0

    def end(self) -> None:
        self._local.paths = None

    def wait_for(self, *paths: Path) -> None:
        """One more blob for the barrier, kept in `paths` (a file, or a pack and its index)."""
        waiting = self.waiting()
        assert waiting is not None
        if tuple(waiting[-len(paths):]) != paths:
            waiting.extend(paths)
        self._local.blobs += 1

    def barrier(self) -> int:
        """Make every blob stored in this group so far durable; returns how many were waiting."""
        paths = self.waiting()
        if not paths:
            return 0
        if _SYNCFS is not None and len(paths) > _FEW:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
            try:
                if _SYNCFS(fd) != 0:
                    error = ctypes.get_errno()
                    raise OSError(error, os.strerror(error), str(self.root))
            finally:
                os.close(fd)
        else:
            for path in paths:
                fsync_path(path)
            for directory in {path.parent for path in paths}:
                fsync_path(directory, directory=True)
        count, self._local.blobs = self._local.blobs, 0
        paths.clear()
        return count

