"""sha256 of a ciphertext computed while it streams past, for anchoring on chain.

With large chunks, the source makes the next chunk on a worker thread while this one is hashed
in the caller's: hashlib releases the GIL over big buffers and AES-GCM does not, so a large file's
encryption and its hash run on two cores instead of taking turns. The source is only ever
advanced by one thread at a time, one chunk ahead of the caller.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import cast

__all__ = ["HashedChunks"]

_AHEAD_FROM = 1 << 18  # smaller chunks (every 1 KB record) are made one after another: a hand-off costs more
_WORKERS = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="ehr-chunks")
_END = object()


class HashedChunks(Iterator[bytes]):
    """Pass chunks through unchanged while hashing and counting them::

        chunks = HashedChunks(iter_encrypt(f, key, record_id=rid, version=1))
        try:
            store.upload(chunks)  # consumes the iterator
        finally:
            chunks.pause()  # before closing what the source reads from
        anchor(chunks.sha256)
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._digest = hashlib.sha256()
        self._size = 0
        self._done = False
        self._ahead: Future[object] | None = None  # the source making the next chunk

    def __iter__(self) -> HashedChunks:
        return self

    def __next__(self) -> bytes:
        if self._done:
            raise StopIteration
        if self._ahead is not None:
            ahead, self._ahead = self._ahead, None
            chunk = ahead.result()  # the source's own error, if it failed
        else:
            chunk = next(self._chunks, _END)
        if chunk is _END:
            self._done = True
            raise StopIteration
        data = cast(bytes, chunk)
        if len(data) >= _AHEAD_FROM:
            self._ahead = _WORKERS.submit(next, self._chunks, _END)
        self._digest.update(data)
        self._size += len(data)
        return data

    def pause(self) -> None:
        """Wait for a chunk being made ahead (kept for the next `next`): nothing reads the source
        after this returns until the iteration goes on. Call it before closing what the source reads."""
        if self._ahead is not None:
            self._ahead.exception()  # waits; a failure is raised by the next `next`

    @property
    def size(self) -> int:
        """Bytes seen so far."""
        return self._size

    @property
    def sha256(self) -> bytes:
        """The 32-byte digest of everything yielded; only once the chunks are exhausted.

        Raises:
            RuntimeError: the chunks have not all been consumed yet.
        """
        if not self._done:
            raise RuntimeError("the sha256 is known only after every chunk was consumed: finish the upload first")
        return self._digest.digest()
