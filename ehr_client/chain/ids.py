"""Record and batch ids as `RecordRegistry` derives them from the author (see IRecordRegistry).

An id is never chosen freely: it is a hash of the author's address and the author's salt (single
records) or batch key and leaf position (batched records), under a type tag, so no one can claim
an id another member will use, and single and batched ids never collide.
"""

from __future__ import annotations

from collections.abc import Iterator

from eth_abi import encode
from eth_utils import keccak

_SINGLE, _BATCHED, _BATCH = 1, 2, 3


def record_id_of(author: str, salt: bytes) -> bytes:
    return keccak(encode(["uint8", "address", "bytes32"], [_SINGLE, author, salt]))


def batched_record_id_of(author: str, batch_key: bytes, index: int) -> bytes:
    return keccak(encode(["uint8", "address", "bytes32", "uint32"], [_BATCHED, author, batch_key, index]))


def batched_record_ids(author: str, batch_key: bytes, count: int) -> Iterator[tuple[int, bytes]]:
    """(index, id) of every leaf of a batch, one keccak each: the same bytes as `batched_record_id_of`
    (a uint32 index is ABI-encoded as 32 big-endian bytes), without encoding the prefix again."""
    prefix = encode(["uint8", "address", "bytes32"], [_BATCHED, author, batch_key])
    for index in range(count):
        yield index, keccak(prefix + index.to_bytes(32, "big"))


def batch_id_of(author: str, batch_key: bytes) -> bytes:
    return keccak(encode(["uint8", "address", "bytes32"], [_BATCH, author, batch_key]))
