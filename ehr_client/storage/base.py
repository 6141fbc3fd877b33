"""The interface every blob store offers: content-addressed, write-once bytes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

from ehr_client.storage.cid import Cid

__all__ = ["BlobStore", "Cid"]


@runtime_checkable
class BlobStore(Protocol):
    """Content-addressed blob storage.

    Errors: `StorageUnavailable` when the backend is down or full, `BlobNotFound` for a CID the
    store does not hold, `IntegrityError` when stored bytes do not hash to their CID,
    `InvalidRecord` for a malformed CID.

    Streaming reads (`iter_get`) hold back the last chunk until the whole blob has been checked,
    so a consumer never receives a complete blob that failed verification; treat the chunks as
    untrusted until the iterator ends without raising.
    """

    def put(self, data: bytes) -> Cid: ...

    def put_stream(self, chunks: Iterable[bytes]) -> Cid:
        """Store a large blob without holding it in memory; `chunks` is consumed once."""
        ...

    def get(self, cid: Cid) -> bytes: ...

    def iter_get(self, cid: Cid) -> Iterator[bytes]: ...

    def has(self, cid: Cid) -> bool:
        """Whether the store holds the blob; never fetches from a network."""
        ...

    def remove(self, cid: Cid) -> None:
        """Unpin or delete the blob; removing an absent blob is not an error."""
        ...

    def size(self, cid: Cid) -> int:
        """Size of the blob's content in bytes."""
        ...
