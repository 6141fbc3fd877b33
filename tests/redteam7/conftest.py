"""The red team's second review of the packed blob store (round seven): the store's packs and index as
another process of the store's user, a crash, or a damaged disk leaves them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ehr_client.storage import Cid, LocalStore
from tests.redteam6.conftest import ENTRY_SIZE, index_entries, packed_batch  # noqa: F401  (shared helpers)


def packs_dir(root: Path) -> Path:
    return root / "packs"


def rebuild_ran(root: Path, plant: bool = False) -> bool:
    """A rebuild deletes what a rebuild killed midway left (`packs/.index-*`): plant such a leftover
    and see whether it went, to tell from outside whether a call made the index again."""
    marker = packs_dir(root) / ".index-redteam7"
    if plant:
        marker.write_bytes(b"")
        return False
    return not marker.exists()


def put_killed_before_its_entry(root: Path, data: bytes) -> subprocess.CompletedProcess[str]:
    """A separate process packs `data` in a group commit and is SIGKILLed (strace's fault injection) the
    moment it opens the index to append the blob's entry: the blob is whole in a new pack, unindexed."""
    strace = shutil.which("strace")
    assert strace is not None, "strace is needed to kill the writer at an exact system call"
    program = ("import sys; from ehr_client.storage import LocalStore\n"
               "store = LocalStore(sys.argv[1])\n"
               "with store.group_commit():\n"
               "    store.put(bytes.fromhex(sys.argv[2]))\n")
    index = packs_dir(root) / "index"
    argv = [strace, "-qq", "-f", "-o", "/dev/null", "-P", str(index), "-e", "trace=openat",
            "-e", "inject=openat:signal=KILL", sys.executable, "-c", program, str(root), data.hex()]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def stored_bytes_anywhere(root: Path, data: bytes) -> bool:
    """Whether `data` is still on the disk in any file of the store (what erasure must prevent)."""
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink() and data in path.read_bytes():
                return True
    return False


__all__ = ["Cid", "LocalStore"]
