"""Record and batch ids as `RecordRegistry` derives them from the author (see IRecordRegistry).

An id is never chosen freely: it is a hash of the author's address and the author's salt (single
records) or batch key and leaf position (batched records), under a type tag, so no one can claim
an id another member will use, and single and batched ids never collide.
"""

from __future__ import annotations

from collections.abc import Iterator

from eth_utils import keccak, to_canonical_address

_SINGLE, _BATCHED, _BATCH = 1, 2, 3


def _prefix(tag: int, author: str, key: bytes) -> bytes:
    """abi.encode(uint8 tag, address author, bytes32 key), laid out by hand: this runs once per record
    written, and eth_abi's general encoder costs more than the keccak."""
    if len(key) != 32:
        raise ValueError(f"a salt or batch key is 32 bytes, not {len(key)}")
    return tag.to_bytes(32, "big") + bytes(12) + to_canonical_address(author) + bytes(key)


def record_id_of(author: str, salt: bytes) -> bytes:
    return keccak(_prefix(_SINGLE, author, salt))


def batched_record_id_of(author: str, batch_key: bytes, index: int) -> bytes:
    return keccak(_prefix(_BATCHED, author, batch_key) + index.to_bytes(32, "big"))


def batched_record_ids(author: str, batch_key: bytes, count: int) -> Iterator[tuple[int, bytes]]:
    """(index, id) of every leaf of a batch, one keccak each: the same bytes as `batched_record_id_of`."""
    prefix = _prefix(_BATCHED, author, batch_key)
    for index in range(count):
        yield index, keccak(prefix + index.to_bytes(32, "big"))


def batch_id_of(author: str, batch_key: bytes) -> bytes:
    return keccak(_prefix(_BATCH, author, batch_key))
