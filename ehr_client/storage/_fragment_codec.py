"""Reed-Solomon coding (zfec) of one blob into n fragments of which any k rebuild it.

The blob is cut into segments of `segment_size` bytes (a multiple of k; the last segment may be
shorter). Each segment is zero-padded to a multiple of k, split into k blocks and coded into n
shares; fragment i is a 22-byte header followed by share i of every segment, in order. So a
fragment is about 1/k of the blob, and coding or decoding needs one segment in memory at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import zfec

from ehr_client.errors import IntegrityError

MAX_FRAGMENTS = 256  # zfec's limit on n
NONCE_SIZE = 16
MAGIC = b"EHRF"
HEADER_VERSION = 1
HEADER_SIZE = len(MAGIC) + 2 + NONCE_SIZE
DEFAULT_SHARE_SIZE = 1 << 20


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class Layout:
    """Sizes that follow from a blob's size, k, n and segment size."""

    size: int
    k: int
    n: int
    segment_size: int

    @property
    def share_size(self) -> int:
        return self.segment_size // self.k

    @property
    def segments(self) -> int:
        return _ceil_div(self.size, self.segment_size)

    def segment_length(self, segment: int) -> int:
        return min(self.segment_size, self.size - segment * self.segment_size)

    def block_size(self, segment: int) -> int:
        return _ceil_div(self.segment_length(segment), self.k)

    @property
    def padding(self) -> int:
        if not self.segments:
            return 0
        last = self.segments - 1
        return self.block_size(last) * self.k - self.segment_length(last)

    @property
    def fragment_size(self) -> int:
        if not self.segments:
            return HEADER_SIZE
        last = self.segments - 1
        return HEADER_SIZE + last * self.share_size + self.block_size(last)


def fragment_header(nonce: bytes, index: int) -> bytes:
    return MAGIC + bytes((HEADER_VERSION, index)) + nonce


class SegmentCoder:
    """Encode and decode single segments for one (k, n)."""

    def __init__(self, k: int, n: int) -> None:
        self.k, self.n = k, n
        self._encoder = zfec.Encoder(k, n)
        self._decoder = zfec.Decoder(k, n)

    def _blocks(self, segment: bytes) -> tuple[bytes, ...]:
        size = _ceil_div(len(segment), self.k)
        padded = bytes(segment) + bytes(size * self.k - len(segment))
        return tuple(padded[i * size:(i + 1) * size] for i in range(self.k))

    def encode(self, segment: bytes, indices: Sequence[int] | None = None) -> dict[int, bytes]:
        """Shares of `segment` for `indices` (default: all n)."""
        wanted = tuple(range(self.n)) if indices is None else tuple(indices)
        shares = self._encoder.encode(self._blocks(segment), wanted)
        return {index: bytes(share) for index, share in zip(wanted, shares, strict=True)}

    def decode(self, shares: Mapping[int, bytes], length: int) -> bytes:
        """The segment of `length` bytes from k shares with distinct indices."""
        if len(shares) != self.k:
            raise ValueError(f"decoding needs exactly {self.k} shares, got {len(shares)}")
        indices = tuple(shares)
        blocks = self._decoder.decode(tuple(shares[i] for i in indices), indices)
        return b"".join(bytes(block) for block in blocks)[:length]


def rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """`chunks` re-cut into pieces of exactly `size` bytes (the last may be shorter; none empty)."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            with memoryview(buffer) as view:
                piece = bytes(view[:size])
            del buffer[:size]
            yield piece
    if buffer:
        yield bytes(buffer)


def encoded_parts(
    coder: SegmentCoder, nonce: bytes, segments: Iterable[bytes], indices: Sequence[int] | None = None
) -> Iterator[dict[int, bytes]]:
    """Fragment contents as a stream of parts: first each header, then each segment's shares."""
    wanted = tuple(range(coder.n)) if indices is None else tuple(indices)
    yield {index: fragment_header(nonce, index) for index in wanted}
    for segment in segments:
        yield coder.encode(segment, wanted)


def read_exact(source: BinaryIO, size: int) -> bytes:
    data = source.read(size)
    if len(data) != size:
        raise IntegrityError(f"a fragment ended early ({len(data)} of {size} bytes); run `ehr storage repair`")
    return bytes(data)


def decoded_segments(coder: SegmentCoder, layout: Layout, fragments: Mapping[int, BinaryIO]) -> Iterator[bytes]:
    """The blob's segments from k fragment files, each positioned just after its header."""
    for segment in range(layout.segments):
        block = layout.block_size(segment)
        shares = {index: read_exact(f, block) for index, f in fragments.items()}
        yield coder.decode(shares, layout.segment_length(segment))

