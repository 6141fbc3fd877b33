"""The interface every blob store offers: content-addressed, write-once bytes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol, runtime_checkable

from ehr_client.storage.cid import Cid

__all__ = ["BlobStore", "Cid", "DurablePuts"]


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

    def group_commit(self) -> AbstractContextManager[Callable[[], int] | None]:
        """Let the blobs this thread stores in the block skip their own durability until the barrier
        it yields (called again on leaving the block normally; returns how many were waiting). Yields
        None where every put is durable when it returns: there is no barrier to wait for."""
        ...

    def include_in_barrier(self, cid: Cid) -> None:
        """Have this thread's barrier also make durable a blob stored earlier (one an interrupted
        process may have left in the page cache); outside a group commit, make it durable now."""
        ...


class DurablePuts:
    """The group commit of a store whose every put is durable when it returns (a network store)."""

    @contextmanager
    def group_commit(self) -> Iterator[Callable[[], int] | None]:
        yield None

    def include_in_barrier(self, cid: Cid) -> None:
        return None
