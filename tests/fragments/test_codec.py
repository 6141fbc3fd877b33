"""Erasure coding round trips: any k of n fragments rebuild the blob, at every size and boundary."""

from __future__ import annotations

import io
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ehr_client.errors import IntegrityError
from ehr_client.storage._fragment_codec import (
    HEADER_SIZE,
    Layout,
    SegmentCoder,
    decoded_segments,
    encoded_parts,
    fragment_header,
    rechunk,
)
from tests.fragments.conftest import FIXED

NONCE = bytes(range(16))
CODES = [(1, 1), (1, 3), (2, 3), (3, 5), (4, 4), (5, 9)]
SHARE = 7  # bytes per share in a full segment: tiny, so blobs cross many segment boundaries


def _fragments(data: bytes, k: int, n: int, segment_size: int, *, chunk: int = 5) -> dict[int, bytes]:
    coder = SegmentCoder(k, n)
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)]
    parts = list(encoded_parts(coder, NONCE, rechunk(pieces, segment_size)))
    return {i: b"".join(part[i] for part in parts) for i in range(n)}


def _decode(fragments: dict[int, bytes], indices: tuple[int, ...], layout: Layout) -> bytes:
    files = {i: io.BytesIO(fragments[i][HEADER_SIZE:]) for i in indices}
    return b"".join(decoded_segments(SegmentCoder(layout.k, layout.n), layout, files))


def _boundary_sizes(segment: int) -> list[int]:
    return sorted({0, 1, 2, segment - 1, segment, segment + 1, 2 * segment, 3 * segment - 1, 3 * segment + 2})


@st.composite
def _case(draw: st.DrawFn) -> tuple[bytes, int, int, tuple[int, ...]]:
    k, n = draw(st.sampled_from(CODES))
    segment = k * SHARE
    size = draw(st.one_of(st.sampled_from(_boundary_sizes(segment)), st.integers(0, 6 * segment)))
    data = draw(st.binary(min_size=size, max_size=size))
    chosen = draw(st.permutations(range(n)))[:k]
    return data, k, n, tuple(chosen)


@FIXED
@given(_case())
def test_any_k_fragments_rebuild_the_blob(case: tuple[bytes, int, int, tuple[int, ...]]) -> None:
    data, k, n, chosen = case
    layout = Layout(len(data), k, n, k * SHARE)
    fragments = _fragments(data, k, n, k * SHARE)
    assert all(len(f) == layout.fragment_size for f in fragments.values())
    assert all(f[:HEADER_SIZE] == fragment_header(NONCE, i) for i, f in fragments.items())
    assert _decode(fragments, chosen, layout) == data


@pytest.mark.parametrize("size", _boundary_sizes(3 * SHARE))
def test_every_k_subset_rebuilds_a_blob_at_a_segment_boundary(size: int) -> None:
    data = bytes((i * 37 + 11) % 256 for i in range(size))
    layout = Layout(size, 3, 5, 3 * SHARE)
    fragments = _fragments(data, 3, 5, 3 * SHARE)
    for chosen in itertools.combinations(range(5), 3):
        assert _decode(fragments, chosen, layout) == data


@pytest.mark.parametrize(
    ("size", "padding", "fragment"),
    [(0, 0, HEADER_SIZE), (1, 2, HEADER_SIZE + 1), (21, 0, HEADER_SIZE + 7), (22, 2, HEADER_SIZE + 8),
     (43, 2, HEADER_SIZE + 15)],
)
def test_layout_pads_only_the_last_segment_to_a_multiple_of_k(size: int, padding: int, fragment: int) -> None:
    layout = Layout(size, 3, 5, 3 * SHARE)
    assert (layout.padding, layout.fragment_size) == (padding, fragment)


def test_fragments_are_about_one_kth_of_the_blob() -> None:
    layout = Layout(10_000_000, 3, 5, 3 << 20)
    assert layout.fragment_size - HEADER_SIZE == -(-10_000_000 // 3)


def test_decoding_a_truncated_fragment_raises_integrity_error() -> None:
    data = bytes(100)
    layout = Layout(100, 3, 5, 3 * SHARE)
    fragments = _fragments(data, 3, 5, 3 * SHARE)
    files = {i: io.BytesIO(fragments[i][HEADER_SIZE:-1]) for i in (0, 2, 4)}
    with pytest.raises(IntegrityError, match="ended early"):
        b"".join(decoded_segments(SegmentCoder(3, 5), layout, files))


@FIXED
@given(st.lists(st.binary(max_size=40), max_size=20), st.integers(1, 50))
def test_rechunk_cuts_exact_pieces_and_keeps_every_byte(chunks: list[bytes], size: int) -> None:
    pieces = list(rechunk(chunks, size))
    assert b"".join(pieces) == b"".join(chunks)
    assert all(len(p) == size for p in pieces[:-1]) and all(0 < len(p) <= size for p in pieces)
