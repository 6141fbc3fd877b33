"""The red team's review of the packed blob store (round six): the `ehr` command's world (its own
Anvil, a home, a lab, a patient) and the store's packs and index as an attacker on the machine sees them."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

from ehr_client.storage import Cid, LocalStore
from tests.cli.conftest import Cli, anvil, cli, home, world  # noqa: F401  (fixtures)

ENTRY = struct.Struct(">32s16sQI")  # as docs/FORMAT.md: big-endian
ENTRY_SIZE = ENTRY.size + 4
REMOVED = 0xFFFFFFFF


def store_root(home: Path) -> Path:
    return home / "store"


def pack_files(home: Path) -> list[Path]:
    return sorted((store_root(home) / "packs").glob("*.pack"))


def index_entries(home: Path) -> list[tuple[bytes, bytes, int, int]]:
    """Every entry of the pack index whose CRC checks: (digest, pack name, offset, length)."""
    path = store_root(home) / "packs" / "index"
    data = path.read_bytes() if path.exists() else b""
    found = []
    for start in range(0, len(data) - len(data) % ENTRY_SIZE, ENTRY_SIZE):
        body = data[start:start + ENTRY.size]
        if zlib.crc32(body) == struct.unpack_from(">I", data, start + ENTRY.size)[0]:
            found.append(ENTRY.unpack(body))
    return found


def forged_entry(digest: bytes, pack: bytes, offset: int, length: int) -> bytes:
    """An index entry as any process of the store's user can append one (the CRC is not a secret)."""
    body = ENTRY.pack(digest, pack, offset, length)
    return body + struct.pack(">I", zlib.crc32(body))


def packed_batch(store: LocalStore, count: int, size: int = 1000) -> list[tuple[Cid, bytes]]:
    """Random blobs stored as the batch writer stores them: packed in one group commit."""
    written = []
    with store.group_commit():
        for _ in range(count):
            data = os.urandom(size)
            written.append((store.put(data), data))
    return written


def age_packs(home: Path, seconds: float) -> None:
    for pack in pack_files(home):
        stat = pack.stat()
        os.utime(pack, (stat.st_atime - seconds, stat.st_mtime - seconds))


def ehr_killed_at_first_open_of(cli: Cli, path: Path, *args: str, wallet: str) -> subprocess.CompletedProcess[str]:
    """Run `ehr` as its own process and SIGKILL it (strace's fault injection) the moment it first opens `path`,
    as a crash or `kill -9` would at that instant."""
    strace = shutil.which("strace")
    assert strace is not None, "strace is needed to kill the writer at an exact system call"
    ehr = shutil.which("ehr")
    assert ehr is not None
    argv = [strace, "-qq", "-f", "-o", "/dev/null", "-P", str(path), "-e", "trace=openat",
            "-e", "inject=openat:signal=KILL", ehr, "--wallet", wallet, *args]
    return subprocess.run(argv, env={**os.environ, **cli.env}, capture_output=True, text=True, timeout=300)
