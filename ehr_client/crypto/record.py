"""One-call encryption of a small record (FHIR JSON, a PDF) held in memory.

A record envelope is the same format as a stream (`ehr_client.crypto.stream`); a record up to one
chunk (1 MiB by default) is a single chunk. Each call makes a fresh data key, so every record
version has its own.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from ehr_client.crypto._format import DEFAULT_CHUNK_SIZE
from ehr_client.crypto._source import BytesLike
from ehr_client.crypto.keys import DataKey, generate_data_key
from ehr_client.crypto.stream import iter_decrypt, iter_encrypt

__all__ = ["EncryptedRecord", "decrypt_record", "encrypt_record"]


class EncryptedRecord(NamedTuple):
    """The envelope to store, the data key to wrap for each reader, and the sha256 to anchor."""

    ciphertext: bytes
    data_key: DataKey
    sha256: bytes

    def __repr__(self) -> str:
        return f"EncryptedRecord(ciphertext=<{len(self.ciphertext)} bytes>, data_key=<redacted>, sha256={self.sha256.hex()})"


def encrypt_record(plaintext: BytesLike, *, record_id: bytes, version: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> EncryptedRecord:
    """Encrypt `plaintext` under a fresh data key bound to `record_id` and `version`.

    Raises:
        InvalidRecord: `record_id` is not 32 bytes or `version` is not a uint64.
    """
    data_key = generate_data_key()
    ciphertext = b"".join(iter_encrypt(plaintext, data_key, record_id=record_id, version=version, chunk_size=chunk_size))
    return EncryptedRecord(ciphertext, data_key, hashlib.sha256(ciphertext).digest())


def decrypt_record(ciphertext: BytesLike, data_key: bytes, *, record_id: bytes, version: int) -> bytes:
    """Decrypt a record envelope made by `encrypt_record` (or any stream envelope held in memory).

    Raises:
        DecryptionError: on any failure, with no hint of which check failed.
        InvalidRecord: `record_id` is not 32 bytes or `version` is not a uint64.
    """
    return b"".join(iter_decrypt(ciphertext, data_key, record_id=record_id, version=version))
