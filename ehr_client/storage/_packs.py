"""Packed blobs for `LocalStore`'s group commit: a batch's blobs appended to one file, not a file each.

Creating a file costs an inode, and on some filesystems an inode costs far more than the bytes
(ext4 without a journal skips every inode freed in the last minutes, one by one, at each
allocation). Inside a group commit `LocalStore.put` appends the blob to this thread's pack
(`<root>/packs/<random>.pack`, a new one after every barrier) and one fixed-size entry to the
store's index (`<root>/packs/index`), so a batch of 256 records costs one new file, not 256.

Index entries are 64 bytes: the blob's sha-256 digest, the pack's 16-byte name, offset, length and
a CRC-32 of the rest. Writers append under `flock`, padding a torn tail (a crash mid-append) to
the entry size first; readers skip what does not check. The newest entry of a digest wins; a
removal appends a tombstone (length `_REMOVED`) after zeroing the blob's bytes in its pack
(`fallocate` punches them out where the filesystem can), so a removed blob's ciphertext is gone
from the disk's files just as an unlinked file's would be. Durability is the group commit's:
nothing refers to a packed blob before the barrier, and reads check every blob against its CID.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import secrets
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ehr_client.storage._group_commit import fsync_path

PACK_DIR = "packs"
PACKED_AT_MOST = 4 << 20  # larger blobs keep a file each: their inode is a small part of their cost
INDEX_NAME = "index"
_PACK_SUFFIX = ".pack"
_ENTRY = struct.Struct("<32s16sQI")  # digest, pack name, offset, length; then the CRC-32 of these
_ENTRY_SIZE = _ENTRY.size + 4  # and the CRC: 64 bytes
_REMOVED = 0xFFFFFFFF
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02


@dataclass(frozen=True)
class PackedBlob:
    """Where one copy of a blob is: its pack, offset and length."""

    pack: Path
    offset: int
    length: int


def _load_fallocate() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    try:
        function = ctypes.CDLL(None, use_errno=True).fallocate
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
    function.restype = ctypes.c_int
    return function


_FALLOCATE = _load_fallocate()


def _encode(digest: bytes, pack: bytes, offset: int, length: int) -> bytes:
    body = _ENTRY.pack(digest, pack, offset, length)
    return body + struct.pack("<I", zlib.crc32(body))


class Packs:
    """The packs and index of one store; an in-memory index of the entries read so far."""

    def __init__(self, root: Path) -> None:
        self.dir = root / PACK_DIR
        self.index_path = self.dir / INDEX_NAME
        self._lock = threading.Lock()
        self._local = threading.local()
        self._index_file = (0, 0)  # (device, inode) of the index file parsed so far
        self._read_to = 0  # bytes of it already parsed
        self._entries: dict[bytes, list[tuple[bytes, int, int]]] = {}  # digest -> entries, oldest first

    # --- writing (inside a group commit) ----------------------------------------------------------

    def append(self, digest: bytes, data: bytes) -> Path:
        """Append a blob to this thread's pack and index it; the pack's path (for the barrier)."""
        pack = self._open_pack()
        offset = pack.size
        try:
            write_all(pack.fd, data)
        except OSError:
            self.rotate()  # the pack may end in a torn copy no entry names; the next blob starts another
            raise
        pack.size += len(data)
        self._append_entries(_encode(digest, pack.name, offset, len(data)))
        return pack.path

    def rotate(self) -> None:
        """Close this thread's pack: the next blob starts a new one (after a barrier or a group)."""
        pack: _OpenPack | None = getattr(self._local, "pack", None)
        if pack is not None:
            self._local.pack = None
            os.close(pack.fd)

    def _open_pack(self) -> _OpenPack:
        pack: _OpenPack | None = getattr(self._local, "pack", None)
        if pack is None:
            self.dir.mkdir(mode=0o700, exist_ok=True)
            while True:
                name = secrets.token_bytes(16)
                path = self.dir / f"{name.hex()}{_PACK_SUFFIX}"
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:
                    continue
                break
            pack = self._local.pack = _OpenPack(name, path, fd)
        return pack

    def _append_entries(self, entries: bytes) -> None:
        fd = os.open(self.index_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            torn = os.fstat(fd).st_size % _ENTRY_SIZE
            write_all(fd, b"\0" * (_ENTRY_SIZE - torn) + entries if torn else entries)
        finally:
            os.close(fd)  # releases the lock

    # --- reading ----------------------------------------------------------------------------------

    def copies(self, digest: bytes) -> list[PackedBlob] | None:
        """The packed copies of a blob, newest first; None when it was never packed or was removed.

        Reads the index's new entries first: another process may have packed or removed it since."""
        with self._lock:
            self._refresh()
            entries = self._entries.get(digest)
        if not entries or entries[-1][2] == _REMOVED:
            return None
        copies = []
        for name, offset, length in reversed(entries):
            if length == _REMOVED:
                break
            copies.append(PackedBlob(self.dir / f"{name.hex()}{_PACK_SUFFIX}", offset, length))
        return copies

    def live(self) -> Iterator[tuple[bytes, PackedBlob]]:
        """Every packed blob not removed, with its newest copy."""
        with self._lock:
            self._refresh()
            entries = {digest: list(found) for digest, found in self._entries.items()}
        for digest, found in entries.items():
            name, offset, length = found[-1]
            if length != _REMOVED:
                yield digest, PackedBlob(self.dir / f"{name.hex()}{_PACK_SUFFIX}", offset, length)

    def _refresh(self) -> None:
        """Parse the index entries appended since the last look (by any process)."""
        try:
            with open(self.index_path, "rb") as f:
                seen = os.fstat(f.fileno())
                if (seen.st_dev, seen.st_ino) != self._index_file or seen.st_size < self._read_to:
                    self._index_file, self._read_to = (seen.st_dev, seen.st_ino), 0  # replaced (restored) since
                    self._entries.clear()
                f.seek(self._read_to)
                tail = f.read()
        except FileNotFoundError:
            self._index_file, self._read_to = (0, 0), 0
            self._entries.clear()
            return
        whole = len(tail) - len(tail) % _ENTRY_SIZE
        for start in range(0, whole, _ENTRY_SIZE):
            body = tail[start:start + _ENTRY.size]
            (crc,) = struct.unpack_from("<I", tail, start + _ENTRY.size)
            if zlib.crc32(body) != crc:
                continue  # the padding after a torn append, or damage: never an entry
            digest, name, offset, length = _ENTRY.unpack(body)
            self._entries.setdefault(digest, []).append((name, offset, length))
        self._read_to += whole

    # --- removing ---------------------------------------------------------------------------------

    def remove(self, digest: bytes) -> bool:
        """Zero every packed copy of a blob, then record its removal; whether there was one."""
        copies = self.copies(digest)
        if copies is None:
            return False
        for copy in copies:
            _erase_bytes(copy)
        self._append_entries(_encode(digest, b"\0" * 16, 0, _REMOVED))
        fsync_path(self.index_path)
        return True


@dataclass
class _OpenPack:
    name: bytes
    path: Path
    fd: int
    size: int = 0


def _erase_bytes(copy: PackedBlob) -> None:
    """Take a blob's bytes out of its pack: punch them out, or overwrite them with zeros."""
    try:
        fd = os.open(copy.pack, os.O_WRONLY)
    except FileNotFoundError:
        return
    try:
        punched = False
        if _FALLOCATE is not None:
            flags = _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE
            if _FALLOCATE(fd, flags, copy.offset, copy.length) == 0:
                punched = True
            elif ctypes.get_errno() not in (errno.EOPNOTSUPP, errno.ENOSYS):
                error = ctypes.get_errno()
                raise OSError(error, os.strerror(error), str(copy.pack))
        if not punched:
            os.pwrite(fd, b"\0" * copy.length, copy.offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_copy(copy: PackedBlob) -> bytes:
    """The bytes of one packed copy (short if its pack was truncated)."""
    fd = os.open(copy.pack, os.O_RDONLY)
    try:
        return os.pread(fd, copy.length, copy.offset)
    finally:
        os.close(fd)


def write_all(fd: int, chunk: bytes) -> None:
    view = memoryview(chunk)
    while view:
        written = os.write(fd, view)
        view = view[written:]
