"""sha256 of a ciphertext computed while it streams past, for anchoring on chain.

Large chunks are hashed on a worker thread while the caller encrypts and stores the next one:
hashlib releases the GIL over big buffers, so a large file's encryption and its hash share the
cores instead of taking turns. Chunks are hashed in order, at most one behind the caller.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["HashedChunks"]

_BEHIND_FROM = 1 << 18  # smaller chunks (every 1 KB record) are hashed at once: a hand-off costs more
_HASHERS = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="ehr-sha256")


class HashedChunks(Iterator[bytes]):
    """Pass chunks through unchanged while hashing and counting them::

        chunks = HashedChunks(iter_encrypt(f, key, record_id=rid, version=1))
        store.upload(chunks)  # consumes the iterator
        anchor(chunks.sha256)
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._digest = hashlib.sha256()
        self._size = 0
        self._done = False
        self._behind: Future[None] | None = None  # the hash of the last large chunk, still running

    def __iter__(self) -> HashedChunks:
        return self

    def __next__(self) -> bytes:
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self._catch_up()
            self._done = True
            raise
        self._catch_up()
        if len(chunk) >= _BEHIND_FROM:
            self._behind = _HASHERS.submit(self._digest.update, chunk)
        else:
            self._digest.update(chunk)
        self._size += len(chunk)
        return chunk

    def _catch_up(self) -> None:
        if self._behind is not None:
            behind, self._behind = self._behind, None
            behind.result()

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
