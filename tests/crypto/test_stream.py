from __future__ import annotations

import hashlib
import io
import os
import stat
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ehr_client.crypto import (
    HEADER_SIZE,
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    HashedChunks,
    decrypt_record,
    decrypt_stream,
    decrypt_to_path,
    encrypt_stream,
    encrypted_size,
    generate_data_key,
    iter_decrypt,
    iter_encrypt,
)
from ehr_client.errors import DecryptionError, InvalidRecord
from tests.crypto.helpers import FIXED, RECORD_ID, flip, split_chunks

CHUNK = 64
KEY = generate_data_key()
PLAINTEXT = bytes(i * 7 % 251 for i in range(3 * CHUNK + 10))


def seal(plaintext: bytes = PLAINTEXT, *, chunk_size: int = CHUNK, key: bytes = KEY) -> bytes:
    return b"".join(iter_encrypt(plaintext, key, record_id=RECORD_ID, version=1, chunk_size=chunk_size))


def open_all(envelope: bytes, *, key: bytes = KEY) -> bytes:
    return b"".join(iter_decrypt(envelope, key, record_id=RECORD_ID, version=1))


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    """`data` cut at the given offsets (sorted, clipped), empty pieces included."""
    bounds = [0, *sorted(min(c, len(data)) for c in cuts), len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


class Trickle(io.RawIOBase):
    """A pipe-like file whose reads return at most `step` bytes."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = memoryview(data)
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._step, len(self._data))
        buffer[:n] = self._data[:n]
        self._data = self._data[n:]
        return n


class ReadOnly:
    """A file-like object with `read` but no `readinto`."""

    def __init__(self, data: bytes) -> None:
        self._file = io.BytesIO(data)

    def read(self, n: int) -> bytes:
        return self._file.read(n)


def sizes_around_boundaries(chunk_size: int) -> st.SearchStrategy[int]:
    near = [k * chunk_size + d for k in range(4) for d in (-1, 0, 1) if k * chunk_size + d >= 0]
    return st.one_of(st.sampled_from(near), st.integers(0, 5 * chunk_size))


@FIXED
@given(data=st.data(), chunk_size=st.sampled_from([MIN_CHUNK_SIZE, 100, 256]))
def test_stream_round_trips_at_chunk_boundaries(data, chunk_size):
    size = data.draw(sizes_around_boundaries(chunk_size))
    plaintext = data.draw(st.binary(min_size=size, max_size=size))
    envelope = seal(plaintext, chunk_size=chunk_size)
    assert len(envelope) == encrypted_size(size, chunk_size=chunk_size)
    assert open_all(envelope) == plaintext
    out = io.BytesIO()
    assert decrypt_stream(io.BytesIO(envelope), out, KEY, record_id=RECORD_ID, version=1) == size
    assert out.getvalue() == plaintext


def test_every_chunk_but_the_last_is_full():
    for size in (0, CHUNK - 1, CHUNK, 2 * CHUNK):
        _, chunks = split_chunks(seal(os.urandom(size)), CHUNK)
        assert len(chunks) == size // CHUNK + 1
        assert len(chunks[-1]) == size % CHUNK + 16


@FIXED
@given(plaintext=st.binary(max_size=400), cuts=st.lists(st.integers(0, 400), max_size=8), step=st.integers(1, 70))
def test_every_source_kind_gives_a_valid_envelope(plaintext, cuts, step):
    sources = [plaintext, memoryview(plaintext), io.BytesIO(plaintext), Trickle(plaintext, step), ReadOnly(plaintext), iter(pieces(plaintext, cuts))]
    for source in sources:
        assert open_all(b"".join(iter_encrypt(source, KEY, record_id=RECORD_ID, version=1, chunk_size=CHUNK))) == plaintext


@FIXED
@given(cuts=st.lists(st.integers(0, 300), max_size=10), step=st.integers(1, 90))
def test_decrypt_accepts_ciphertext_split_anywhere(cuts, step):
    envelope = seal()
    assert b"".join(iter_decrypt(pieces(envelope, cuts), KEY, record_id=RECORD_ID, version=1)) == PLAINTEXT
    out = io.BytesIO()
    decrypt_stream(Trickle(envelope, step), out, KEY, record_id=RECORD_ID, version=1)
    assert out.getvalue() == PLAINTEXT


def test_encrypt_stream_reports_sizes_and_sha256():
    out = io.BytesIO()
    info = encrypt_stream(io.BytesIO(PLAINTEXT), out, KEY, record_id=RECORD_ID, version=1, chunk_size=CHUNK)
    envelope = out.getvalue()
    assert info.plaintext_size == len(PLAINTEXT)
    assert info.ciphertext_size == len(envelope) == encrypted_size(len(PLAINTEXT), chunk_size=CHUNK)
    assert info.sha256 == hashlib.sha256(envelope).digest()
    assert open_all(envelope) == PLAINTEXT


def test_hashed_chunks_passes_chunks_through_and_hashes_them():
    chunks = HashedChunks(iter_encrypt(PLAINTEXT, KEY, record_id=RECORD_ID, version=1, chunk_size=CHUNK))
    with pytest.raises(RuntimeError, match="consumed"):
        chunks.sha256
    envelope = b"".join(chunks)
    assert chunks.sha256 == hashlib.sha256(envelope).digest()
    assert chunks.size == len(envelope)
    assert open_all(envelope) == PLAINTEXT


def test_hashed_chunks_made_ahead_on_a_worker_are_hashed_in_order():
    """After a chunk of 256 KiB or more, the source makes the next one on a worker thread while the
    caller hashes. Mixed sizes, a source that fails midway, and a digest asked before the end all
    behave as one hash in order; `pause` waits for a chunk being made ahead and keeps it."""
    sizes = [1 << 20, 10, 1 << 18, (1 << 18) - 1, 1 << 20, 3, 1 << 19]
    pieces = [os.urandom(n) for n in sizes]
    chunks = HashedChunks(iter(pieces))
    assert [len(c) for c in chunks] == sizes
    assert chunks.sha256 == hashlib.sha256(b"".join(pieces)).digest() and chunks.size == sum(sizes)

    def failing() -> Iterator[bytes]:
        yield pieces[0]
        raise OSError("the source file went away")

    broken = HashedChunks(failing())
    assert next(broken) == pieces[0]
    with pytest.raises(OSError, match="went away"):
        next(broken)
    with pytest.raises(RuntimeError, match="consumed"):
        broken.sha256

    abandoned = HashedChunks(iter(pieces))
    assert next(abandoned) == pieces[0]
    abandoned.pause()  # the second chunk, made ahead, is waited for and kept; nothing runs after this
    assert next(abandoned) == pieces[1]


def test_decrypt_fails_when_final_chunk_dropped():
    header, chunks = split_chunks(seal(), CHUNK)
    truncated = header + b"".join(chunks[:-1])
    released = []
    with pytest.raises(DecryptionError):
        for piece in iter_decrypt(truncated, KEY, record_id=RECORD_ID, version=1):
            released.append(piece)
    assert b"".join(released) == PLAINTEXT[: 3 * CHUNK]  # verified chunks, then the error


def test_decrypt_fails_when_empty_final_chunk_dropped():
    header, chunks = split_chunks(seal(os.urandom(2 * CHUNK)), CHUNK)
    assert len(chunks[-1]) == 16
    with pytest.raises(DecryptionError):
        open_all(header + b"".join(chunks[:-1]))


def test_decrypt_fails_when_only_header_left():
    with pytest.raises(DecryptionError):
        open_all(seal()[:HEADER_SIZE])


@pytest.mark.parametrize("cut", [1, 15, 16, 17, CHUNK + 15])
def test_decrypt_fails_when_truncated_mid_chunk(cut):
    envelope = seal()
    with pytest.raises(DecryptionError):
        open_all(envelope[: HEADER_SIZE + cut])


def test_decrypt_fails_when_chunk_reordered():
    header, chunks = split_chunks(seal(), CHUNK)
    chunks[0], chunks[1] = chunks[1], chunks[0]
    with pytest.raises(DecryptionError):
        open_all(header + b"".join(chunks))


def test_decrypt_fails_when_chunk_duplicated():
    header, chunks = split_chunks(seal(), CHUNK)
    with pytest.raises(DecryptionError):
        open_all(header + b"".join([chunks[0], *chunks]))


def test_decrypt_fails_when_chunk_spliced_from_other_stream_under_same_key():
    header, chunks = split_chunks(seal(), CHUNK)
    _, others = split_chunks(seal(), CHUNK)
    chunks[1] = others[1]
    with pytest.raises(DecryptionError):
        open_all(header + b"".join(chunks))


@pytest.mark.parametrize("extra", [b"\x00", bytes(16), bytes(CHUNK + 16), b"\x00" * 1000], ids=["1", "16", "chunk", "1000"])
def test_decrypt_fails_when_bytes_appended_after_final_chunk(extra):
    with pytest.raises(DecryptionError):
        open_all(seal() + extra)


def test_decrypt_fails_when_final_chunk_copied_after_itself():
    header, chunks = split_chunks(seal(os.urandom(CHUNK)), CHUNK)
    with pytest.raises(DecryptionError):
        open_all(header + b"".join(chunks) + chunks[-1])


@pytest.mark.parametrize("chunk_size", [CHUNK - 1, CHUNK + 1, 2 * CHUNK, MAX_CHUNK_SIZE, 2**32 - 1])
def test_decrypt_fails_when_chunk_size_in_header_changed(chunk_size):
    envelope = bytearray(seal())
    envelope[5:9] = chunk_size.to_bytes(4, "big")
    with pytest.raises(DecryptionError):
        open_all(bytes(envelope))


def test_decrypt_releases_no_plaintext_of_tampered_chunk():
    envelope = seal()
    tampered = flip(envelope, HEADER_SIZE + 2 * (CHUNK + 16) + 5)
    released = []
    with pytest.raises(DecryptionError):
        for piece in iter_decrypt(tampered, KEY, record_id=RECORD_ID, version=1):
            released.append(piece)
    assert b"".join(released) == PLAINTEXT[: 2 * CHUNK]


def test_decrypt_stream_writes_only_verified_chunks():
    tampered = flip(seal(), HEADER_SIZE + CHUNK + 16 + 3)
    out = io.BytesIO()
    with pytest.raises(DecryptionError):
        decrypt_stream(io.BytesIO(tampered), out, KEY, record_id=RECORD_ID, version=1)
    assert out.getvalue() == PLAINTEXT[:CHUNK]


def test_decrypt_fails_with_other_version_or_key():
    envelope = seal()
    with pytest.raises(DecryptionError):
        b"".join(iter_decrypt(envelope, KEY, record_id=RECORD_ID, version=2))
    with pytest.raises(DecryptionError):
        open_all(envelope, key=generate_data_key())


def test_decrypt_to_path_writes_private_file_on_success(tmp_path):
    target = tmp_path / "scan.dcm"
    written = decrypt_to_path(io.BytesIO(seal()), target, KEY, record_id=RECORD_ID, version=1)
    assert written == len(PLAINTEXT)
    assert target.read_bytes() == PLAINTEXT
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["scan.dcm"]


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_decrypt_to_path_leaves_nothing_behind_on_failure(tmp_path, damage):
    envelope = seal()
    bad = envelope[:-16] if damage == "truncate" else flip(envelope, len(envelope) - 1)
    target = tmp_path / "scan.dcm"
    target.write_bytes(b"previous version")
    with pytest.raises(DecryptionError):
        decrypt_to_path(io.BytesIO(bad), target, KEY, record_id=RECORD_ID, version=1)
    assert target.read_bytes() == b"previous version"
    assert os.listdir(tmp_path) == ["scan.dcm"]


@pytest.mark.parametrize("chunk_size", [0, MIN_CHUNK_SIZE - 1, MAX_CHUNK_SIZE + 1, True])
def test_encrypt_rejects_chunk_size_out_of_range(chunk_size):
    with pytest.raises(ValueError, match="chunk_size"):
        iter_encrypt(b"", KEY, record_id=RECORD_ID, version=1, chunk_size=chunk_size)


def test_encrypt_checks_arguments_before_iteration():
    with pytest.raises(ValueError, match="32 bytes"):
        iter_encrypt(b"", bytes(16), record_id=RECORD_ID, version=1)
    with pytest.raises(InvalidRecord):
        iter_encrypt(b"", KEY, record_id=b"short", version=1)
    with pytest.raises(InvalidRecord):
        iter_decrypt(b"", KEY, record_id=RECORD_ID, version=-1)


def test_stream_and_record_share_one_format():
    assert decrypt_record(seal(), KEY, record_id=RECORD_ID, version=1) == PLAINTEXT


def test_large_file_round_trip_uses_bounded_memory(tmp_path):
    size, chunk_size = 20 * 1024 * 1024, 64 * 1024
    plain, sealed, opened = tmp_path / "plain", tmp_path / "sealed", tmp_path / "opened"
    digest = hashlib.sha256()
    with plain.open("wb") as f:
        for _ in range(size // (1 << 20)):
            block = os.urandom(1 << 20)
            digest.update(block)
            f.write(block)

    tracemalloc.start()
    try:
        with plain.open("rb") as src, sealed.open("wb") as dst:
            info = encrypt_stream(src, dst, KEY, record_id=RECORD_ID, version=1, chunk_size=chunk_size)
        _, encrypt_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with sealed.open("rb") as src:
            written = decrypt_to_path(src, opened, KEY, record_id=RECORD_ID, version=1)
        _, decrypt_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert info.plaintext_size == written == size
    assert info.ciphertext_size == sealed.stat().st_size
    assert max(encrypt_peak, decrypt_peak) < 4 * chunk_size, (encrypt_peak, decrypt_peak)  # about two chunks
    with opened.open("rb") as f:
        assert hashlib.file_digest(f, "sha256").digest() == digest.digest()
