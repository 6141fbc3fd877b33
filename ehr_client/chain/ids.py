"""Record and batch ids as `RecordRegistry` derives them from the author (see IRecordRegistry).

An id is never chosen freely: it is a hash of the author's address and the author's salt (single
records) or batch key and leaf position (batched records), under a type tag, so no one can claim
an id another member will use, and single and batched ids never collide.

A batch id is the leading 12 bytes of its hash (the rest zero). A batched record id is its batch id
(bytes 0-11), its leaf index (bytes 12-15, big-endian) and the last 16 bytes of the leaf's hash, so
the id itself says which batch to look in (`RecordRegistry.anchoredNear`) and which leaf it is.
"""

from __future__ import annotations

from functools import lru_cache

from eth_utils import to_canonical_address
from eth_utils.crypto import keccak_256 as keccak  # eth_utils.keccak without its argument conversion: runs per record

_SINGLE, _BATCHED, _BATCH = 1, 2, 3
_BATCH_ID_BYTES = 12


def _prefix(tag: int, author: str, key: bytes) -> bytes:
    """abi.encode(uint8 tag, address author, bytes32 key), laid out by hand: this runs once per record
    written, and eth_abi's general encoder costs more than the keccak."""
    if len(key) != 32:
        raise ValueError(f"a salt or batch key is 32 bytes, not {len(key)}")
    return tag.to_bytes(32, "big") + bytes(12) + _canonical(author) + bytes(key)


@lru_cache(maxsize=256)
def _canonical(author: str) -> bytes:
    return bytes(to_canonical_address(author))


def record_id_of(author: str, salt: bytes) -> bytes:
    return keccak(_prefix(_SINGLE, author, salt))


def batched_record_id_of(author: str, batch_key: bytes, index: int) -> bytes:
    leaf = keccak(_prefix(_BATCHED, author, batch_key) + index.to_bytes(32, "big"))
    return batch_id_of(author, batch_key)[:_BATCH_ID_BYTES] + index.to_bytes(4, "big") + leaf[16:]


def batch_id_of(author: str, batch_key: bytes) -> bytes:
    return _batch_id(str(author), bytes(batch_key))


@lru_cache(maxsize=256)
def _batch_id(author: str, batch_key: bytes) -> bytes:
    """Cached: every batched record id of a batch starts with it, and the writer makes them one by one."""
    return keccak(_prefix(_BATCH, author, batch_key))[:_BATCH_ID_BYTES] + bytes(32 - _BATCH_ID_BYTES)


def leaf_index_named_by(record_id: bytes) -> int:
    """The leaf index a batched record id carries (meaningless for a single record's id)."""
    return int.from_bytes(record_id[_BATCH_ID_BYTES:_BATCH_ID_BYTES + 4], "big")
