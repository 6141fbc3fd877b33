"""`LocalStore`: the embedded default blob store, a content-addressed directory.

Layout: `<root>/<shard>/<cid>` where `<shard>` is the two characters before the CID's last one
(as Kubo's flatfs does: every raw CIDv1 starts with the same eight characters, so a prefix would
not spread files). Writes go to a temporary file (in the blob's own directory for `put`, in
`<root>/.incoming` for `put_stream`, whose CID is known only at the end) that is fsynced and
renamed into place, then the directory is fsynced: a blob is either absent or complete.
Inside `group_commit()` `put` appends a blob of up to 4 MiB to a pack instead (`<root>/packs`, see
`ehr_client.storage._packs`) and the fsyncs wait for one barrier (`ehr_client.storage._group_commit`).
A blob is looked for as a file first, then in the packs. Reads check that the bytes hash to the CID.
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from ehr_client.errors import BlobNotFound, IntegrityError, InvalidRecord, StorageFull, StorageUnavailable
from ehr_client.storage._group_commit import GroupCommit, fsync_path
from ehr_client.storage._packs import PACK_DIR, PACKED_AT_MOST, PackedBlob, Packs, read_copy, write_all
from ehr_client.storage._verify import check_bytes, verified_chunks
from ehr_client.storage.cid import RAW, Cid, CidHasher, cid_for_bytes, cid_from_digest, decode_cid

_INCOMING = ".incoming"
_TEMP_PREFIX = ".tmp-"
_READ_CHUNK = 1 << 20
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})  # EFBIG: over a file-size limit


class LocalStore:
    """A `BlobStore` in a local directory (created if missing)."""

    def __init__(self, root: Path | str, *, chunk_size: int = _READ_CHUNK) -> None:
        self.root = Path(root)
        self._chunk_size = chunk_size
        self._group = GroupCommit(self.root)
        self._packs = Packs(self.root)
        self._temp_names = itertools.count()
        self._known_dirs: set[Path] = set()
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            (self.root / _INCOMING).mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            raise self._write_error(exc) from exc

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def path_for(self, cid: Cid) -> Path:
        decode_cid(cid)
        return self._path(cid)

    def _path(self, cid: Cid) -> Path:
        """`path_for` of a CID this store computed itself (no need to check it)."""
        return self.root / cid[-3:-1] / cid

    @contextmanager
    def group_commit(self) -> Iterator[Callable[[], int] | None]:
        """Blobs this thread stores in the block skip their fsyncs until the barrier it yields (called
        again on leaving the block normally); see `ehr_client.storage._group_commit`."""
        self._group.begin()
        try:
            yield self.barrier
            self.barrier()
        finally:
            self._group.end()
            self._packs.rotate()

    def include_in_barrier(self, cid: Cid) -> None:
        """Have this thread's barrier make a blob stored earlier durable too (one an interrupted
        process stored and may have left in the page cache); outside a group, fsync it now."""
        path = self.path_for(cid)
        waiting = self._group.waiting()
        try:
            if path.exists():
                paths: tuple[Path, ...] = (path,)
            elif copies := self._copies(cid):
                paths = (*(c.pack for c in copies), self._packs.index_path)
            else:
                raise self._not_found(cid)
            if waiting is not None:
                self._group.wait_for(*paths)
                return
            for each in paths:
                fsync_path(each)
                _fsync_dir(each.parent)
        except OSError as exc:
            raise self._write_error(exc) from exc

    def barrier(self) -> int:
        """Make the blobs of this thread's group commit durable; how many were waiting."""
        try:
            return self._group.barrier()
        except OSError as exc:
            raise self._write_error(exc) from exc
        finally:
            self._packs.rotate()

    def put(self, data: bytes) -> Cid:
        cid = cid_for_bytes(data)
        if self._group.waiting() is None or len(data) > PACKED_AT_MOST:
            return self._store((data,), self._path(cid).parent, cid=cid)
        try:
            pack = self._packs.append(decode_cid(cid).digest, data)
        except OSError as exc:
            raise self._write_error(exc) from exc
        self._group.wait_for(pack, self._packs.index_path)
        return cid

    def put_stream(self, chunks: Iterable[bytes]) -> Cid:
        return self._store(chunks, self.root / _INCOMING)

    def get(self, cid: Cid) -> bytes:
        f = self._open(cid)
        if f is None:
            return self._get_packed(cid)
        with f:
            try:
                data = f.read()
            except OSError as exc:
                raise self._read_error(cid, exc) from exc
        return check_bytes(cid, data, repr(self))

    def iter_get(self, cid: Cid) -> Iterator[bytes]:
        f = self._open(cid)
        if f is None:
            return iter((self._get_packed(cid),))
        return verified_chunks(cid, self._read_chunks(cid, f), repr(self))

    def has(self, cid: Cid) -> bool:
        if decode_cid(cid).codec != RAW:
            return False
        return self.path_for(cid).is_file() or bool(self._copies(cid))

    def remove(self, cid: Cid) -> None:
        path = self.path_for(cid)
        try:
            try:
                path.unlink()
                _fsync_dir(path.parent)
            except FileNotFoundError:
                pass
            info = decode_cid(cid)
            if info.codec == RAW:  # packs hold raw blobs only; another codec's CID may share their digest
                self._packs.remove(info.digest)
        except OSError as exc:
            raise StorageUnavailable(
                f"cannot delete blob {cid} from {self!r}: {exc.strerror}; check the directory's permissions"
            ) from exc

    def blobs(self) -> Iterator[tuple[Cid, float]]:
        """Every stored blob and its modification time (for garbage collection); temporary files skipped.

        A packed blob has its pack's time: that of the last blob appended to it. Every pack is read
        (a blob a crash left unindexed is listed too)."""
        files: set[str] = set()
        for shard in sorted(p for p in self.root.iterdir() if p.is_dir() and p.name not in (_INCOMING, PACK_DIR)):
            for path in sorted(shard.iterdir()):
                if path.name.startswith(".") or not path.is_file():
                    continue
                try:
                    decode_cid(Cid(path.name))
                except InvalidRecord:
                    continue
                files.add(path.name)
                yield Cid(path.name), path.stat().st_mtime
        times: dict[Path, float | None] = {}
        try:
            for digest, copy in self._packs.live():
                if copy.pack not in times:
                    try:
                        seen = copy.pack.lstat()
                        times[copy.pack] = seen.st_mtime if stat.S_ISREG(seen.st_mode) else None
                    except FileNotFoundError:
                        times[copy.pack] = None  # the pack is gone: nothing of it to read or delete
                mtime, cid = times[copy.pack], cid_from_digest(digest)
                if mtime is not None and cid not in files:  # a blob also kept as a file is listed once
                    yield cid, mtime
        except OSError as exc:
            raise StorageUnavailable(f"cannot list the packs of {self!r}: {exc.strerror or exc}") from exc

    def size(self, cid: Cid) -> int:
        self._require_raw(cid)
        try:
            return self.path_for(cid).stat().st_size
        except FileNotFoundError:
            copies = self._copies(cid)
            if copies:
                return copies[0].length
            raise self._not_found(cid) from None
        except OSError as exc:
            raise self._read_error(cid, exc) from exc

    def location(self, cid: Cid) -> tuple[Path, int, int]:
        """Where the blob's bytes are read from: (file, offset, length); a whole file or a pack's part."""
        path = self.path_for(cid)
        try:
            return path, 0, path.stat().st_size
        except FileNotFoundError:
            pass
        copies = self._copies(cid)
        if not copies:
            raise self._not_found(cid)
        return copies[0].pack, copies[0].offset, copies[0].length

    def _copies(self, cid: Cid) -> list[PackedBlob]:
        try:
            return self._packs.copies(decode_cid(cid).digest) or []
        except OSError as exc:
            raise self._read_error(cid, exc) from exc

    def _get_packed(self, cid: Cid) -> bytes:
        """The newest packed copy that hashes to the CID (an older one if a crash tore the newest)."""
        problem: Exception | None = None
        for copy in self._copies(cid):
            try:
                return check_bytes(cid, read_copy(copy), repr(self))
            except FileNotFoundError:
                continue
            except OSError as exc:
                problem = problem or self._read_error(cid, exc)
            except IntegrityError as exc:
                problem = problem or exc
        if problem is not None:
            if not self._copies(cid):  # removed while it was being read
                raise self._not_found(cid) from None
            raise problem
        raise self._not_found(cid)

    def _store(self, chunks: Iterable[bytes], tmp_dir: Path, *, cid: Cid | None = None) -> Cid:
        """Write `chunks` to a new file and rename it to its CID (`cid`, when the caller hashed them)."""
        tmp: Path | None = None
        try:
            waiting = self._group.waiting()
            tmp, fd = self._temp_file(tmp_dir)
            hasher = CidHasher() if cid is None else None
            try:
                for chunk in chunks:
                    if hasher is not None:
                        hasher.update(chunk)
                    write_all(fd, chunk)
                if waiting is None:
                    os.fsync(fd)
            finally:
                os.close(fd)
            if hasher is not None:
                cid = hasher.cid()
            assert cid is not None
            final = self._path(cid)
            self._ensure_dir(final.parent)
            try:
                os.replace(tmp, final)
            except FileNotFoundError:  # the shard directory was removed since it was seen
                self._ensure_dir(final.parent, again=True)
                os.replace(tmp, final)
            tmp = None
            if waiting is None:
                _fsync_dir(final.parent)
            else:
                self._group.wait_for(final)
            return cid
        except OSError as exc:
            raise self._write_error(exc) from exc
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)

    def _temp_file(self, directory: Path) -> tuple[Path, int]:
        """A new file only this call writes (pid, thread and a counter name it; O_EXCL makes sure)."""
        self._ensure_dir(directory)
        while True:
            path = directory / f"{_TEMP_PREFIX}{os.getpid()}-{threading.get_ident()}-{next(self._temp_names)}"
            try:
                return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # left by a crashed process that had the same pid
                continue
            except FileNotFoundError:  # the directory was removed since it was seen
                self._ensure_dir(directory, again=True)
                return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    def _ensure_dir(self, path: Path, *, again: bool = False) -> None:
        """mkdir once per directory and store (a mkdir that finds the directory still costs a syscall)."""
        if again:
            self._known_dirs.discard(path)
        if path not in self._known_dirs:
            path.mkdir(mode=0o700, exist_ok=True)
            self._known_dirs.add(path)

    def _open(self, cid: Cid) -> BinaryIO | None:
        """The blob's file, or None when it is not stored as a file."""
        self._require_raw(cid)
        try:
            return open(self.path_for(cid), "rb")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._read_error(cid, exc) from exc

    def _read_chunks(self, cid: Cid, f: BinaryIO) -> Iterator[bytes]:
        with f:
            while True:
                try:
                    chunk = f.read(self._chunk_size)
                except OSError as exc:
                    raise self._read_error(cid, exc) from exc
                if not chunk:
                    return
                yield chunk

    def _require_raw(self, cid: Cid) -> None:
        if decode_cid(cid).codec != RAW:
            raise BlobNotFound(
                f"blob {cid} is not a raw-codec CID; {self!r} holds only blobs it stored itself (raw CIDv1)"
            )

    def _not_found(self, cid: Cid) -> BlobNotFound:
        return BlobNotFound(f"blob {cid} is not in {self!r}; it was never stored here or was removed")

    def _read_error(self, cid: Cid, exc: OSError) -> StorageUnavailable:
        return StorageUnavailable(f"cannot read blob {cid} from {self!r}: {exc.strerror or exc}")

    def _write_error(self, exc: OSError) -> StorageUnavailable:
        if exc.errno in _DISK_FULL:
            return StorageFull(
                f"disk full: cannot store the blob in {self!r} ({exc.strerror}); nothing was written. "
                "Free some space or move the store to a larger disk, then retry"
            )
        return StorageUnavailable(
            f"cannot write to {self!r}: {exc.strerror or exc}; nothing was written. "
            "Check that the directory exists and is writable"
        )


def _fsync_dir(path: Path) -> None:
    fsync_path(path, directory=True)
