"""The envelope's binary layout: header, per-chunk nonces, associated data and sizes.

Every envelope, a small record or a multi-gigabyte file, is one stream::

    header   48 bytes   magic "EHRE" | format version 1 | chunk size (uint32 BE)
                        | nonce prefix (7) | key commitment (32)
    chunk 0  chunk_size + 16 bytes   AES-256-GCM ciphertext and tag
    ...
    final    0 .. chunk_size-1 plaintext bytes + 16-byte tag

Every chunk but the last holds exactly ``chunk_size`` plaintext bytes and the last holds fewer
(possibly none), so a reader tells the last chunk by its short length alone and never needs a length
field it would have to trust. Chunk ``i`` uses the nonce ``prefix || uint32_be(i) || final`` (STREAM,
as in Tink and age), so chunks cannot be reordered, duplicated, dropped from the end or extended
past the last. The associated data of every chunk is ``header || record_id || uint64_be(version)``.

The AES key and the key commitment are ``HKDF-SHA256(data_key, info="ehr_client/stream/v1" ||
prefix)`` split 32/32: each stream gets its own key even if a data key were reused, and a reader
checks the commitment before decrypting anything.
"""

from __future__ import annotations

import hmac
import struct
from typing import NamedTuple

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ehr_client.errors import DecryptionError, InvalidRecord

MAGIC = b"EHRE"
FORMAT_VERSION = 1
TAG_SIZE = 16
NONCE_PREFIX_SIZE = 7
KEY_COMMITMENT_SIZE = 32
RECORD_ID_SIZE = 32
DATA_KEY_SIZE = 32
MIN_CHUNK_SIZE = 64
MAX_CHUNK_SIZE = 16 * 1024 * 1024
MAX_CHUNKS = 2**32
DEFAULT_CHUNK_SIZE = 1024 * 1024

_HEADER = struct.Struct(">4sBI7s32s")
HEADER_SIZE = _HEADER.size
_STREAM_KDF_LABEL = b"ehr_client/stream/v1"


class StreamHeader(NamedTuple):
    """The parsed fields of an envelope header."""

    chunk_size: int
    nonce_prefix: bytes
    key_commitment: bytes

    def to_bytes(self) -> bytes:
        return _HEADER.pack(MAGIC, FORMAT_VERSION, self.chunk_size, self.nonce_prefix, self.key_commitment)


def parse_header(data: bytes) -> StreamHeader:
    """Parse untrusted header bytes; anything but a well-formed version-1 header is a DecryptionError."""
    if len(data) != HEADER_SIZE:
        raise DecryptionError()
    magic, version, chunk_size, prefix, commitment = _HEADER.unpack(data)
    if magic != MAGIC or version != FORMAT_VERSION or not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise DecryptionError()
    return StreamHeader(chunk_size, prefix, commitment)


def derive_stream_keys(data_key: bytes, nonce_prefix: bytes) -> tuple[bytes, bytes]:
    """Return ``(encryption_key, key_commitment)`` for one stream.

    The commitment in the header pins the data key, so one ciphertext cannot be made to decrypt to
    two different plaintexts under two keys wrapped for two recipients (AES-GCM alone allows it).
    """
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=_STREAM_KDF_LABEL + nonce_prefix).derive(data_key)
    return okm[:32], okm[32:]


def check_key_commitment(expected: bytes, actual: bytes) -> None:
    if not hmac.compare_digest(expected, actual):
        raise DecryptionError()


def chunk_nonce(nonce_prefix: bytes, counter: int, final: bool) -> bytes:
    """The 96-bit nonce of chunk `counter`: prefix (7) || counter (4, big-endian) || final flag (1)."""
    return nonce_prefix + counter.to_bytes(4, "big") + (b"\x01" if final else b"\x00")


def record_associated_data(record_id: bytes, version: int, context: bytes = b"") -> bytes:
    """The bytes that bind a ciphertext or a wrapped key to one record version.

    ``record_id`` (32 bytes, the on-chain ``bytes32``), ``version`` as a big-endian uint64, then
    ``context``: what else the caller binds (the client binds patient, scope and author, see
    ``ehr_client.package.RecordBinding``).

    Raises:
        InvalidRecord: the id is not 32 bytes or the version is not an integer in [0, 2**64).
    """
    if not isinstance(record_id, (bytes, bytearray, memoryview)) or len(record_id) != RECORD_ID_SIZE:
        raise InvalidRecord(f"a record id must be {RECORD_ID_SIZE} bytes (the on-chain bytes32): pass the raw id, not hex")
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version < 2**64:
        raise InvalidRecord("a record version must be an integer from 0 to 2**64 - 1")
    return bytes(record_id) + version.to_bytes(8, "big") + bytes(context)


def check_chunk_size(chunk_size: int) -> None:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size must be an integer from {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE} bytes")


def check_data_key(data_key: bytes) -> None:
    if not isinstance(data_key, (bytes, bytearray, memoryview)) or len(data_key) != DATA_KEY_SIZE:
        raise ValueError(f"a data key must be {DATA_KEY_SIZE} bytes: use generate_data_key()")


def encrypted_size(plaintext_size: int, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> int:
    """The exact ciphertext size of `plaintext_size` bytes, e.g. for a Content-Length header."""
    check_chunk_size(chunk_size)
    if plaintext_size < 0:
        raise ValueError("plaintext_size must not be negative")
    return HEADER_SIZE + plaintext_size + TAG_SIZE * (plaintext_size // chunk_size + 1)
