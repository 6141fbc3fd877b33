"""Chunked AES-256-GCM envelopes (STREAM construction) for files of any size in bounded memory.

See `ehr_client.crypto._format` for the byte layout. Encryption reads one chunk at a time;
decryption verifies each chunk before releasing its plaintext. A stream cut short at a chunk boundary
still yields its verified chunks and then raises `DecryptionError`, so write to a temporary file and
keep it only on success; `decrypt_to_path` does exactly that.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ehr_client.crypto._format import (
    DATA_KEY_SIZE,
    DEFAULT_CHUNK_SIZE,
    HEADER_SIZE,
    MAX_CHUNKS,
    NONCE_PREFIX_SIZE,
    TAG_SIZE,
    StreamHeader,
    check_chunk_size,
    check_data_key,
    check_key_commitment,
    chunk_nonce,
    derive_stream_keys,
    encrypted_size,
    parse_header,
    record_associated_data,
)
from ehr_client.crypto._source import ByteSource, iter_views, open_source
from ehr_client.errors import DecryptionError, InvalidRecord

__all__ = ["StreamInfo", "decrypt_stream", "decrypt_to_path", "encrypt_stream", "iter_decrypt", "iter_encrypt"]


class StreamInfo(NamedTuple):
    """What `encrypt_stream` wrote; `sha256` is the digest of the ciphertext, the value anchored on chain."""

    plaintext_size: int
    ciphertext_size: int
    sha256: bytes


class _Sealer(NamedTuple):
    header: bytes
    aead: AESGCM
    associated_data: bytes
    nonce_prefix: bytes
    chunk_size: int


def _sealer(data_key: bytes, record_id: bytes, version: int, chunk_size: int, context: bytes = b"") -> _Sealer:
    check_data_key(data_key)
    check_chunk_size(chunk_size)
    binding = record_associated_data(record_id, version, context)
    prefix = os.urandom(NONCE_PREFIX_SIZE)
    key, commitment = derive_stream_keys(bytes(data_key), prefix)
    header = StreamHeader(chunk_size, prefix, commitment).to_bytes()
    return _Sealer(header, AESGCM(key), header + binding, prefix, chunk_size)


def _plaintext_chunks(source: ByteSource, sealer: _Sealer) -> Iterator[tuple[bytes, memoryview]]:
    """(nonce, plaintext view) per chunk; a full chunk is never final, so an empty final chunk may follow."""
    for counter, view in enumerate(iter_views(open_source(source), sealer.chunk_size)):
        if counter >= MAX_CHUNKS:
            raise InvalidRecord("the input is too large for this chunk size: pass a larger chunk_size")
        yield chunk_nonce(sealer.nonce_prefix, counter, len(view) < sealer.chunk_size), view


def iter_encrypt(
    source: ByteSource,
    data_key: bytes,
    *,
    record_id: bytes,
    version: int,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    context: bytes = b"",
) -> Iterator[bytes]:
    """Yield the envelope piece by piece: the header, then one ciphertext chunk per `chunk_size` bytes.

    `source` is bytes, a binary file, or an iterable of byte pieces of any size. Memory stays near
    two chunks whatever the input size. Wrap the result in `HashedChunks` to get its sha256 on the way.

    Raises:
        InvalidRecord: `record_id` or `version` is malformed.
        ValueError: the data key is not 32 bytes or `chunk_size` is out of range.
    """
    sealer = _sealer(data_key, record_id, version, chunk_size, context)

    def chunks() -> Iterator[bytes]:
        yield sealer.header
        for nonce, plaintext in _plaintext_chunks(source, sealer):
            yield sealer.aead.encrypt(nonce, plaintext, sealer.associated_data)

    return chunks()


def encrypt_stream(
    src: ByteSource,
    dst: BinaryIO,
    data_key: bytes,
    *,
    record_id: bytes,
    version: int,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> StreamInfo:
    """Encrypt `src` into the binary file `dst` and return the sizes and the ciphertext's sha256.

    `dst` receives views of one reused buffer, so it must copy what it is given (files and
    `io.BytesIO` do).
    """
    sealer = _sealer(data_key, record_id, version, chunk_size)
    digest = hashlib.sha256(sealer.header)
    _write_all(dst, memoryview(sealer.header))
    out = memoryview(bytearray(chunk_size + TAG_SIZE))
    plaintext_size = 0
    for nonce, plaintext in _plaintext_chunks(src, sealer):
        sealed = out[: len(plaintext) + TAG_SIZE]
        sealer.aead.encrypt_into(nonce, plaintext, sealer.associated_data, sealed)
        digest.update(sealed)
        _write_all(dst, sealed)
        plaintext_size += len(plaintext)
    return StreamInfo(plaintext_size, encrypted_size(plaintext_size, chunk_size=chunk_size), digest.digest())


class _Opener(NamedTuple):
    aead: AESGCM
    associated_data: bytes
    nonce_prefix: bytes
    chunk_size: int


def _open_header(header_bytes: bytes, data_key: bytes, binding: bytes) -> _Opener:
    header = parse_header(header_bytes)
    if not isinstance(data_key, (bytes, bytearray, memoryview)) or len(data_key) != DATA_KEY_SIZE:
        raise DecryptionError()
    key, commitment = derive_stream_keys(bytes(data_key), header.nonce_prefix)
    check_key_commitment(header.key_commitment, commitment)
    return _Opener(AESGCM(key), header_bytes + binding, header.nonce_prefix, header.chunk_size)


def _ciphertext_chunks(source: ByteSource, data_key: bytes, binding: bytes) -> Iterator[tuple[_Opener, bytes, memoryview]]:
    """(opener, nonce, ciphertext view) per chunk up to the final one; raises DecryptionError if it is missing."""
    reader = open_source(source)
    opener = _open_header(bytes(reader.fill(HEADER_SIZE)), data_key, binding)
    frame = opener.chunk_size + TAG_SIZE
    for counter, view in enumerate(iter_views(reader, frame)):
        final = len(view) < frame
        if counter >= MAX_CHUNKS or (final and len(view) < TAG_SIZE):
            raise DecryptionError()
        yield opener, chunk_nonce(opener.nonce_prefix, counter, final), view


def iter_decrypt(
    source: ByteSource, data_key: bytes, *, record_id: bytes, version: int, context: bytes = b""
) -> Iterator[bytes]:
    """Yield the plaintext chunk by chunk, each only after its tag has been verified.

    Raises:
        DecryptionError: on any failure, including after the last verified chunk when the stream was
            cut short; treat what was yielded as incomplete until the iterator ends cleanly.
        InvalidRecord: `record_id` or `version` is malformed (raised at once, not on iteration).
    """
    binding = record_associated_data(record_id, version, context)

    def chunks() -> Iterator[bytes]:
        for opener, nonce, ciphertext in _ciphertext_chunks(source, data_key, binding):
            try:
                plaintext = opener.aead.decrypt(nonce, ciphertext, opener.associated_data)
            except InvalidTag:
                raise DecryptionError() from None
            yield plaintext

    return chunks()


def decrypt_stream(src: ByteSource, dst: BinaryIO, data_key: bytes, *, record_id: bytes, version: int) -> int:
    """Decrypt `src` into `dst` and return the number of plaintext bytes written.

    Each chunk is verified before it is written, but a truncated stream is only detected at the end,
    after the earlier chunks are already in `dst`: write to a temporary file and keep it only if this
    returns (`decrypt_to_path` does that for you). Like `encrypt_stream`, `dst` must copy what it is
    given.

    Raises:
        DecryptionError: on any failure (wrong key, other record or version, altered, reordered,
            truncated or extended ciphertext).
        InvalidRecord: `record_id` or `version` is malformed.
    """
    binding = record_associated_data(record_id, version)
    out = memoryview(bytearray())
    written = 0
    for opener, nonce, ciphertext in _ciphertext_chunks(src, data_key, binding):
        if len(out) < opener.chunk_size:
            out = memoryview(bytearray(opener.chunk_size))
        plaintext = out[: len(ciphertext) - TAG_SIZE]
        try:
            opener.aead.decrypt_into(nonce, ciphertext, opener.associated_data, plaintext)
        except InvalidTag:
            plaintext[:] = bytes(len(plaintext))  # decrypt_into leaves unverified plaintext behind
            raise DecryptionError() from None
        _write_all(dst, plaintext)
        written += len(plaintext)
    return written


def decrypt_to_path(
    src: ByteSource,
    path: str | os.PathLike[str],
    data_key: bytes,
    *,
    record_id: bytes,
    version: int,
) -> int:
    """Decrypt `src` to the file `path`, which appears only once the whole stream has verified.

    Writes a private temporary file (mode 0600) next to `path`, fsyncs it, and renames it over
    `path`; on any failure the temporary file is removed and `path` is left as it was.
    Returns the number of plaintext bytes written.

    Raises:
        DecryptionError: as `decrypt_stream`; nothing is left on disk.
        InvalidRecord: `record_id` or `version` is malformed.
        OSError: the directory of `path` is not writable or the disk is full.
    """
    target = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(target)), prefix=".ehr-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            written = decrypt_stream(src, out, data_key, record_id=record_id, version=version)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(os.path.dirname(os.path.abspath(target)))
    return written


def _write_all(dst: BinaryIO, data: memoryview) -> None:
    """`write` may be partial on unbuffered files; loop until everything is written."""
    while data:
        written = dst.write(data)
        if written is None:  # duck-typed sinks often return None after taking everything
            return
        data = data[written:]


def _fsync_directory(directory: str) -> None:
    with contextlib.suppress(OSError):  # not every platform or filesystem can fsync a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
