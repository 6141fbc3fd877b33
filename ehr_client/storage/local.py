"""`LocalStore`: the embedded default blob store, a content-addressed directory.

Layout: `<root>/<shard>/<cid>` where `<shard>` is the two characters before the CID's last one
(as Kubo's flatfs does: every raw CIDv1 starts with the same eight characters, so a prefix would
not spread files). Writes go to a temporary file (in the blob's own directory for `put`, in
`<root>/.incoming` for `put_stream`, whose CID is known only at the end) that is fsynced and
renamed into place, then the directory is fsynced: a blob is either absent or complete.
Inside `group_commit()` the fsyncs wait for one barrier (`ehr_client.storage._group_commit`).
Reads check that the bytes hash to the CID.
"""

from __future__ import annotations

import errno
import itertools
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from ehr_client.errors import BlobNotFound, InvalidRecord, StorageFull, StorageUnavailable
from ehr_client.storage._group_commit import GroupCommit, fsync_path
from ehr_client.storage._verify import check_bytes, verified_chunks
from ehr_client.storage.cid import RAW, Cid, CidHasher, cid_for_bytes, decode_cid

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

    def include_in_barrier(self, cid: Cid) -> None:
        """Have this thread's barrier make a blob stored earlier durable too (one an interrupted
        process stored and may have left in the page cache); outside a group, fsync it now."""
        path = self.path_for(cid)
        waiting = self._group.waiting()
        try:
            if waiting is None:
                fsync_path(path)
                _fsync_dir(path.parent)
            else:
                waiting.append(path)
        except OSError as exc:
            raise self._write_error(exc) from exc

    def barrier(self) -> int:
        """Make the blobs of this thread's group commit durable; how many were waiting."""
        try:
            return self._group.barrier()
        except OSError as exc:
            raise self._write_error(exc) from exc

    def put(self, data: bytes) -> Cid:
        cid = cid_for_bytes(data)
        return self._store((data,), self._path(cid).parent, cid=cid)

    def put_stream(self, chunks: Iterable[bytes]) -> Cid:
        return self._store(chunks, self.root / _INCOMING)

    def get(self, cid: Cid) -> bytes:
        with self._open(cid) as f:
            try:
                data = f.read()
            except OSError as exc:
                raise self._read_error(cid, exc) from exc
        return check_bytes(cid, data, repr(self))

    def iter_get(self, cid: Cid) -> Iterator[bytes]:
        f = self._open(cid)
        return verified_chunks(cid, self._read_chunks(cid, f), repr(self))

    def has(self, cid: Cid) -> bool:
        if decode_cid(cid).codec != RAW:
            return False
        return self.path_for(cid).is_file()

    def remove(self, cid: Cid) -> None:
        path = self.path_for(cid)
        try:
            path.unlink()
            _fsync_dir(path.parent)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageUnavailable(
                f"cannot delete blob {cid} from {self!r}: {exc.strerror}; check the directory's permissions"
            ) from exc

    def blobs(self) -> Iterator[tuple[Cid, float]]:
        """Every stored blob and its modification time (for garbage collection); temporary files skipped."""
        for shard in sorted(p for p in self.root.iterdir() if p.is_dir() and p.name != _INCOMING):
            for path in sorted(shard.iterdir()):
                if path.name.startswith(".") or not path.is_file():
                    continue
                try:
                    decode_cid(Cid(path.name))
                except InvalidRecord:
                    continue
                yield Cid(path.name), path.stat().st_mtime

    def size(self, cid: Cid) -> int:
        self._require_raw(cid)
        try:
            return self.path_for(cid).stat().st_size
        except FileNotFoundError:
            raise self._not_found(cid) from None
        except OSError as exc:
            raise self._read_error(cid, exc) from exc

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
                    _write_all(fd, chunk)
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
                waiting.append(final)
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

    def _open(self, cid: Cid) -> BinaryIO:
        self._require_raw(cid)
        try:
            return open(self.path_for(cid), "rb")
        except FileNotFoundError:
            raise self._not_found(cid) from None
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


def _write_all(fd: int, chunk: bytes) -> None:
    view = memoryview(chunk)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(path: Path) -> None:
    fsync_path(path, directory=True)
