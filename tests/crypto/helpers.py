"""Shared settings and byte surgery for the crypto tests."""

from __future__ import annotations

from hypothesis import settings

from ehr_client.crypto import HEADER_SIZE, TAG_SIZE

FIXED = settings(derandomize=True, database=None, deadline=None, max_examples=60)
"""Reproducible hypothesis runs: same examples on every machine and every run."""

RECORD_ID = bytes(range(32))
OTHER_RECORD_ID = bytes(range(1, 33))


def flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    """`data` with the bits in `mask` flipped at `index`."""
    out = bytearray(data)
    out[index] ^= mask
    return bytes(out)


def split_chunks(envelope: bytes, chunk_size: int) -> tuple[bytes, list[bytes]]:
    """Cut an envelope into its header and its ciphertext chunks (the last one short)."""
    frame = chunk_size + TAG_SIZE
    body = envelope[HEADER_SIZE:]
    return envelope[:HEADER_SIZE], [body[i : i + frame] for i in range(0, len(body), frame)]
