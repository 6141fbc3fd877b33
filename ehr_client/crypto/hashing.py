"""sha256 of a ciphertext computed while it streams past, for anchoring on chain."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

__all__ = ["HashedChunks"]


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

    def __iter__(self) -> HashedChunks:
        return self

    def __next__(self) -> bytes:
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self._done = True
            raise
        self._digest.update(chunk)
        self._size += len(chunk)
        return chunk

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
