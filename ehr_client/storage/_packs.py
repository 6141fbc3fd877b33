"""Packed blobs for `LocalStore`'s group commit: a batch's blobs appended to one file, not a file each.

Creating a file costs an inode, and on some filesystems an inode costs far more than the bytes
(ext4 without a journal skips every inode freed in the last minutes, one by one, at each
allocation). Inside a group commit `LocalStore.put` appends the blob to this thread's pack
(`<root>/packs/<random>.pack`, a new one after every barrier) and one fixed-size entry to the
store's index (`<root>/packs/index`), so a batch of 256 records costs one new file, not 256.

A pack is self-describing: each blob follows a 48-byte header (magic, sha-256 digest, length,
CRC-32). The index is what finds them fast, and can always be made again from the packs
(`rebuild`, run by itself when a lookup misses while the index is missing, damaged, or names
nothing in some pack): only blobs whose bytes hash to their header's digest go back in.

Index entries are 64 bytes: the blob's digest, the pack's 16-byte name, offset, length and a
CRC-32 of the rest. Writers append under `flock`, padding a torn tail (a crash mid-append) to the
entry size first; readers skip what does not check. The newest entry of a digest wins; a removal
appends a tombstone (length `_REMOVED`) after zeroing the blob's bytes in its pack (`fallocate`
punches them out where the filesystem can), so a removed blob's ciphertext is gone from the
disk's files just as an unlinked file's would be. Durability is the group commit's: nothing
refers to a packed blob before the barrier, and reads check every blob against its CID.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import os
import secrets
import stat
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ehr_client.storage._group_commit import fsync_path

PACK_DIR = "packs"
PACKED_AT_MOST = 4 << 20  # larger blobs keep a file each: their inode is a small part of their cost
INDEX_NAME = "index"
_PACK_SUFFIX = ".pack"
_ENTRY = struct.Struct(">32s16sQI")  # digest, pack name, offset, length; then the CRC-32 of these
_CRC = struct.Struct(">I")
_SCANS_BEFORE_A_TABLE = 16
_ENTRY_SIZE = _ENTRY.size + _CRC.size  # 64 bytes
_HEADER = struct.Struct(">4s32sQ")  # a packed blob's magic, digest and length; then the CRC-32 of these
_HEADER_SIZE = _HEADER.size + _CRC.size  # 48 bytes
_MAGIC = b"EHRb"
_LOCK_NAME = "lock"
_REMOVED = 0xFFFFFFFF
_FARTHEST = 1 << 48  # no offset in a pack is this large (a file system's limit is below it)
_SEEN = 0xFFFFFFFE  # a rebuild's mark on a pack that no entry names (its blobs torn or removed)
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
    return body + _CRC.pack(zlib.crc32(body))


def _header(digest: bytes, length: int) -> bytes:
    body = _HEADER.pack(_MAGIC, digest, length)
    return body + _CRC.pack(zlib.crc32(body))


class Packs:
    """The packs and index of one store, and the index's entries read so far."""

    def __init__(self, root: Path) -> None:
        self.dir = root / PACK_DIR
        self.index_path = self.dir / INDEX_NAME
        self._lock = threading.Lock()
        self._local = threading.local()
        self._index_file = (0, 0)  # (device, inode) of the index file read so far
        self._raw = bytearray()  # its whole entries read so far
        self._scans = 0  # lookups answered by a scan of `_raw`
        self._table: dict[bytes, list[int]] | None = None  # digest -> where its entries start, oldest first
        self._tabled_to = 0  # bytes of `_raw` in the table
        self._checked_to = 0  # bytes of `_raw` checked for damaged entries
        self._named: set[bytes] = set()  # the packs named by the entries checked
        self._listed: tuple[tuple[int, int], set[bytes]] | None = None  # (the directory's inode and time, pack names)
        self._rebuilt: set[tuple[int, int]] = set()  # index files this process wrote by a rebuild

    # --- writing (inside a group commit) ----------------------------------------------------------

    def append(self, digest: bytes, data: bytes) -> Path:
        """Append a blob to this thread's pack and index it; the pack's path (for the barrier)."""
        pack = self._open_pack()
        offset = pack.size + _HEADER_SIZE
        try:
            write_all(pack.fd, _header(digest, len(data)) + data)
        except OSError:
            self.rotate()  # the pack may end in a torn copy no entry names; the next blob starts another
            raise
        pack.size = offset + len(data)
        self._append_entries(_encode(digest, pack.name, offset, len(data)), pack.path,
                             undo=lambda: _erase_bytes(PackedBlob(pack.path, offset, len(data)), digest))
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
            fcntl.flock(fd, fcntl.LOCK_EX)  # held while it is written: a rebuild leaves its tail alone
            pack = self._local.pack = _OpenPack(name, path, fd)
        return pack

    def _append_entries(self, entries: bytes, own_pack: Path | None = None,
                        undo: Callable[[], None] | None = None) -> None:
        """Append to the index under its lock; if that fails, `undo` runs under the lock too (a blob
        refused must be zeroed before a rebuild could find it whole and index it)."""
        with self._index_lock():
            try:
                if not self.index_path.exists() and self._has_packs(but=own_pack):
                    self._rebuild_held()  # the index was lost: first make it again, or its blobs stay unfound
                fd = _open_regular(self.index_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
                try:
                    torn = os.fstat(fd).st_size % _ENTRY_SIZE
                    write_all(fd, b"\0" * (_ENTRY_SIZE - torn) + entries if torn else entries)
                finally:
                    os.close(fd)
            except OSError:
                if undo is not None:
                    undo()
                raise

    @contextmanager
    def _index_lock(self) -> Iterator[None]:
        """Held by whoever appends to the index or replaces it, in any process (`flock` on `packs/lock`)."""
        try:
            fd = os.open(self.dir / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            self.dir.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(self.dir / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _has_packs(self, *, but: Path | None = None) -> bool:
        return any(pack != but for pack in self._pack_files())

    def _pack_files(self) -> list[Path]:
        return sorted(pack for pack in self.dir.glob(f"*{_PACK_SUFFIX}") if _pack_name(pack) is not None)

    # --- reading ----------------------------------------------------------------------------------

    def copies(self, digest: bytes) -> list[PackedBlob] | None:
        """The packed copies of a blob, newest first; None when it was never packed or was removed.

        Reads the index's new entries first: another process may have packed or removed it since.
        The first lookups of a process search the entries where they lie (a scan in C of 64 bytes a
        blob: about 1 ms for 100,000 blobs), so a command that reads one record does not parse the
        whole index; a process that keeps looking builds a table once and extends it. A blob the
        index does not name is looked for in the packs if the index is missing or damaged."""
        with self._lock:
            self._read_index()
            copies, removed = self._find(digest)
            if not copies and not removed and self._needs_rebuild():
                self._rebuild_locked()
                self._read_index()
                copies, _ = self._find(digest)
        return copies or None

    def _find(self, digest: bytes) -> tuple[list[PackedBlob], bool]:
        """The copies the index names, newest first, down to a removal; and whether there was one."""
        copies: list[PackedBlob] = []
        for at in self._positions(digest):
            entry = _checked(self._raw, at)
            if entry is None:
                continue
            _, name, offset, length = entry
            if length == _REMOVED:
                return copies, True
            if length != _SEEN:
                copies.append(self._located(name, offset, length))
        return copies, False

    def _needs_rebuild(self) -> bool:
        """Whether the index misses what the packs hold: it is missing, holds a damaged entry not
        seen before, or names no entry in a pack (an older index restored). Not again for an index
        file this process rebuilt: a damage that comes back is not chased forever."""
        if self._index_file in self._rebuilt:
            return False
        if self._index_file == (0, 0):
            return self._has_packs()
        damaged = False
        for at in range(self._checked_to, len(self._raw), _ENTRY_SIZE):
            entry = _checked(self._raw, at)
            if entry is None:
                damaged = True
            elif entry[3] != _REMOVED:
                self._named.add(entry[1])
        self._checked_to = len(self._raw)
        return damaged or not self._pack_names() <= self._named

    def _pack_names(self) -> set[bytes]:
        """The names of the pack files, listed again only when the directory changed."""
        try:
            seen = os.stat(self.dir)
        except FileNotFoundError:
            return set()
        if self._listed is None or self._listed[0] != (seen.st_ino, seen.st_mtime_ns):
            names = {name for pack in self._pack_files() if (name := _pack_name(pack)) is not None}
            self._listed = ((seen.st_ino, seen.st_mtime_ns), names)
        return self._listed[1]

    def _positions(self, digest: bytes) -> Iterator[int]:
        """Where entries of `digest` may start in the index, newest first (the caller checks them)."""
        raw = self._raw
        if self._table is None and self._scans < _SCANS_BEFORE_A_TABLE:
            self._scans += 1
            end = len(raw)
            while (at := raw.rfind(digest, 0, end)) >= 0:
                yield at
                end = at + len(digest) - 1
            return
        if self._table is None:
            self._table, self._tabled_to = {}, 0
        for at in range(self._tabled_to, len(raw), _ENTRY_SIZE):
            entry = _checked(raw, at)
            if entry is not None:
                self._table.setdefault(entry[0], []).append(at)
        self._tabled_to = len(raw)
        yield from reversed(self._table.get(digest, ()))

    def live(self) -> Iterator[tuple[bytes, PackedBlob]]:
        """Every packed blob not removed, with its newest copy. The packs are read whole first, so a
        blob whose entry a crash lost is listed too (for garbage collection to see it)."""
        with self._lock:
            self._rebuild_locked()
            self._read_index()
            raw = bytes(self._raw)
        newest: dict[bytes, tuple[bytes, int, int]] = {}
        for at in range(0, len(raw), _ENTRY_SIZE):
            entry = _checked(raw, at)
            if entry is not None:
                newest[entry[0]] = entry[1:]
        for digest, (name, offset, length) in newest.items():
            if length not in (_REMOVED, _SEEN):
                yield digest, self._located(name, offset, length)

    def _forget(self, index_file: tuple[int, int]) -> None:
        self._index_file, self._raw, self._table, self._tabled_to = index_file, bytearray(), None, 0
        self._checked_to, self._named = 0, set()

    def _located(self, name: bytes, offset: int, length: int) -> PackedBlob:
        return PackedBlob(self.dir / f"{name.hex()}{_PACK_SUFFIX}", offset, length)

    def rebuild(self) -> tuple[int, int]:
        """Make the index again from itself and the packs; (entries added from the packs, damaged dropped)."""
        with self._lock:
            found = self._rebuild_locked()
            self._read_index()
            return found

    def _rebuild_locked(self) -> tuple[int, int]:
        with self._index_lock():
            return self._rebuild_held()

    def _rebuild_held(self) -> tuple[int, int]:
        """Bring the index up to the packs (the lock held): every whole blob of a pack at a place no
        entry names is indexed (a blob whose entry a crash lost, or one being appended right now;
        what nothing references is then garbage collection's, after its grace period). Appended; or,
        if the index holds damaged entries, the whole index written again without them, atomically in
        place of the old. (Added, dropped)."""
        for stale in self.dir.glob(".index-*"):  # what a rebuild killed midway left
            try:
                stale.unlink()
            except OSError:
                pass  # not a file: never ours (each rebuild writes a new random name)
        try:
            with os.fdopen(_open_regular(self.index_path, os.O_RDONLY), "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            raw = b""
        slots = range(0, len(raw) - len(raw) % _ENTRY_SIZE, _ENTRY_SIZE)
        checked = [(at, entry) for at in slots if (entry := _checked(raw, at)) is not None]
        entries = [entry for _, entry in checked]
        at_places = {(name, offset) for _, name, offset, length in entries if length not in (_REMOVED, _SEEN)}
        named_to: dict[bytes, int] = {}  # per pack, the farthest place an entry names
        for named, offset in at_places:
            named_to[named] = max(named_to.get(named, 0), offset)
        packs_named = {name for _, name, _, length in entries if length != _REMOVED}
        removed = {digest for digest, length in {e[0]: e[3] for e in entries}.items() if length == _REMOVED}
        found = []
        for pack in self._pack_files():
            name = _pack_name(pack)
            assert name is not None
            try:
                whole, parsed_to, size = _read_pack(pack)
                if parsed_to < size and named_to.get(name, -1) < parsed_to:
                    _cut_torn_tail(pack, parsed_to)  # damage before a named blob is left for reads to report
            except OSError:  # not a regular file, or unreadable: nothing in it is indexed (it gets the mark)
                whole = []
            for digest, offset, length in whole:
                if (name, offset) in at_places:
                    continue
                if digest in removed:  # a copy of a removed blob no entry named: zeroed, unless being written
                    _erase_unless_held(PackedBlob(pack, offset, length), digest)
                    continue
                packs_named.add(name)
                found.append(_encode(digest, name, offset, length))
            if name not in packs_named:
                found.append(_encode(b"\0" * 32, name, 0, _SEEN))
        dropped = len(slots) - len(entries)
        if not dropped and raw:
            if found:
                fd = _open_regular(self.index_path, os.O_WRONLY | os.O_APPEND)
                try:
                    torn = len(raw) % _ENTRY_SIZE
                    write_all(fd, b"\0" * (_ENTRY_SIZE - torn) + b"".join(found) if torn else b"".join(found))
                    os.fsync(fd)
                finally:
                    os.close(fd)
            return len(found), 0
        kept = [raw[at:at + _ENTRY_SIZE] for at, _ in checked]
        fresh = self.dir / f".index-{secrets.token_hex(8)}"
        out = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            write_all(out, b"".join(kept + found))
            os.fsync(out)
        finally:
            os.close(out)
        os.replace(fresh, self.index_path)
        fsync_path(self.dir, directory=True)
        self._rebuilt.add(_file_id(self.index_path))
        return len(found), dropped

    def _read_index(self) -> None:
        """Take in the whole entries appended to the index since the last look (by any process); all
        of it again if it was replaced or rewritten since (a restored copy: its last entry read differs)."""
        try:
            with os.fdopen(_open_regular(self.index_path, os.O_RDONLY), "rb") as f:
                seen = os.fstat(f.fileno())
                if (seen.st_dev, seen.st_ino) != self._index_file or seen.st_size < len(self._raw):
                    self._forget((seen.st_dev, seen.st_ino))
                last = max(len(self._raw) - _ENTRY_SIZE, 0)
                f.seek(last)
                tail = f.read()
                if tail[: len(self._raw) - last] != self._raw[last:]:
                    self._forget((seen.st_dev, seen.st_ino))
                    f.seek(0)
                    tail = f.read()
                else:
                    tail = tail[len(self._raw) - last:]
        except FileNotFoundError:
            self._forget((0, 0))
            return
        if len(tail) >= _ENTRY_SIZE:  # a torn last entry is left for the next look
            self._raw += tail[: len(tail) - len(tail) % _ENTRY_SIZE]

    # --- removing ---------------------------------------------------------------------------------

    def remove(self, digest: bytes) -> bool:
        """Zero every packed copy of a blob, then record its removal; whether there was one."""
        copies = self.copies(digest)
        if copies is None:
            return False
        failed: OSError | None = None
        for copy in copies:  # every copy it can, before saying why one could not be
            try:
                _erase_bytes(copy, digest)
            except OSError as exc:
                failed = failed or exc
        if failed is not None:
            raise failed  # no tombstone: a removal run again finds what is left
        self._append_entries(_encode(digest, b"\0" * 16, 0, _REMOVED))
        fsync_path(self.index_path)
        return True


def _checked(raw: bytes | bytearray, at: int) -> tuple[bytes, bytes, int, int] | None:
    """The entry at `at`: (digest, pack name, offset, length); None unless an entry starts there
    and its CRC holds (the padding after a torn append, damage, or a digest's bytes met elsewhere)."""
    if at % _ENTRY_SIZE or at + _ENTRY_SIZE > len(raw):
        return None
    (crc,) = _CRC.unpack_from(raw, at + _ENTRY.size)
    if zlib.crc32(raw[at:at + _ENTRY.size]) != crc:
        return None
    digest, name, offset, length = _ENTRY.unpack_from(raw, at)
    if length not in (_REMOVED, _SEEN) and (length > PACKED_AT_MOST or not _HEADER_SIZE <= offset < _FARTHEST):
        return None  # no put writes such an entry
    return digest, name, offset, length


def _read_pack(pack: Path) -> tuple[list[tuple[bytes, int, int]], int, int]:
    """(digest, offset, length) of each blob in a pack whose bytes hash to its header's digest, up to
    the first header that does not check or a blob cut short (a torn end); where that is, and the
    pack's size. A removed blob's zeroed bytes do not hash."""
    fd = _open_regular(pack, os.O_RDONLY)
    whole = []
    try:
        size, at = os.fstat(fd).st_size, 0
        while at + _HEADER_SIZE <= size:
            header = _parsed_header(os.pread(fd, _HEADER_SIZE, at))
            if header is None or at + _HEADER_SIZE + header[1] > size:
                break
            digest, length = header
            if hashlib.sha256(os.pread(fd, length, at + _HEADER_SIZE)).digest() == digest:
                whole.append((digest, at + _HEADER_SIZE, length))
            at += _HEADER_SIZE + length
        return whole, at, size
    finally:
        os.close(fd)


def _cut_torn_tail(pack: Path, at: int) -> None:
    """Cut a pack back to `at`, the end of its last blob with a whole header and length: what follows
    is a blob a killed writer was writing (part of a sealed package). Not while a writer holds it."""
    fd = _open_regular(pack, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        os.ftruncate(fd, at)
        os.fsync(fd)
    finally:
        os.close(fd)


def _parsed_header(raw: bytes) -> tuple[bytes, int] | None:
    """(digest, length) of a packed blob's header; None if it does not check."""
    if len(raw) != _HEADER_SIZE:
        return None
    (crc,) = _CRC.unpack_from(raw, _HEADER.size)
    if zlib.crc32(raw[:_HEADER.size]) != crc:
        return None
    magic, digest, length = _HEADER.unpack_from(raw)
    if magic != _MAGIC or length > PACKED_AT_MOST:
        return None
    return digest, length


def _pack_name(pack: Path) -> bytes | None:
    """The 16-byte name of a pack file, or None for a file that is not one."""
    try:
        name = bytes.fromhex(pack.name[: -len(_PACK_SUFFIX)])
    except ValueError:
        return None
    return name if len(name) == 16 and pack.name.endswith(_PACK_SUFFIX) else None


def _open_regular(path: Path, flags: int) -> int:
    """A pack or the index opened as what it must be, a regular file of its own: not through a
    symbolic link (erasure would zero what it points at), not a FIFO or a device (a read would hang)."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return fd


def _erase_unless_held(copy: PackedBlob, digest: bytes) -> None:
    """`_erase_bytes`, unless a writer holds the pack (it may be storing that blob again right now)."""
    fd = _open_regular(copy.pack, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        _erase_bytes(copy, digest)
    finally:
        os.close(fd)


def _file_id(path: Path) -> tuple[int, int]:
    seen = os.stat(path)
    return seen.st_dev, seen.st_ino


@dataclass
class _OpenPack:
    name: bytes
    path: Path
    fd: int
    size: int = 0


def _erase_bytes(copy: PackedBlob, digest: bytes) -> None:
    """Take a blob's bytes out of its pack: punch them out, or overwrite them with zeros. Only where
    the pack's own header names this blob: an index entry may say anything."""
    try:
        fd = _open_regular(copy.pack, os.O_RDWR)
    except FileNotFoundError:
        return
    try:
        if _parsed_header(os.pread(fd, _HEADER_SIZE, copy.offset - _HEADER_SIZE)) != (digest, copy.length) and (
                hashlib.sha256(os.pread(fd, copy.length, copy.offset)).digest() != digest):
            return  # neither its header nor its bytes say this blob: not ours to zero
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
    fd = _open_regular(copy.pack, os.O_RDONLY)
    try:
        return os.pread(fd, copy.length, copy.offset)
    finally:
        os.close(fd)


def write_all(fd: int, chunk: bytes) -> None:
    view = memoryview(chunk)
    while view:
        written = os.write(fd, view)
        view = view[written:]
