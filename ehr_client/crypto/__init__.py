"""Envelope encryption: a fresh AES-256-GCM data key per record version, wrapped per reader.

- `encrypt_record` / `decrypt_record`: records held in memory;
- `encrypt_stream`, `iter_encrypt`, `decrypt_stream`, `iter_decrypt`, `decrypt_to_path`: files of
  any size in bounded memory (same format; a small record is a one-chunk stream);
- `wrap_data_key` / `unwrap_data_key`: seal a data key to a reader's X25519 public key
  (`KeyWrapper`: the same for the records of one batch, one ephemeral key per reader);
- `HashedChunks`: sha256 of a ciphertext while it streams, for anchoring on chain.

Every decryption failure raises the one opaque `ehr_client.errors.DecryptionError`.
"""

from ehr_client.crypto._format import (
    DEFAULT_CHUNK_SIZE,
    HEADER_SIZE,
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    RECORD_ID_SIZE,
    TAG_SIZE,
    encrypted_size,
    record_associated_data,
)
from ehr_client.crypto._source import ByteSource
from ehr_client.crypto.claim_secret import claim_secret
from ehr_client.crypto.hashing import HashedChunks
from ehr_client.crypto.keys import DATA_KEY_SIZE, DataKey, X25519KeyPair, generate_data_key, generate_x25519_keypair, x25519_public_key
from ehr_client.crypto.record import EncryptedRecord, decrypt_record, encrypt_record
from ehr_client.crypto.stream import StreamInfo, decrypt_stream, decrypt_to_path, encrypt_stream, iter_decrypt, iter_encrypt
from ehr_client.crypto.wrap import WRAPPED_KEY_SIZE, KeyWrapper, WrappedKey, unwrap_data_key, wrap_data_key

__all__ = [
    "DATA_KEY_SIZE",
    "DEFAULT_CHUNK_SIZE",
    "HEADER_SIZE",
    "MAX_CHUNK_SIZE",
    "MIN_CHUNK_SIZE",
    "RECORD_ID_SIZE",
    "TAG_SIZE",
    "WRAPPED_KEY_SIZE",
    "ByteSource",
    "DataKey",
    "EncryptedRecord",
    "HashedChunks",
    "KeyWrapper",
    "StreamInfo",
    "WrappedKey",
    "X25519KeyPair",
    "claim_secret",
    "decrypt_record",
    "decrypt_stream",
    "decrypt_to_path",
    "encrypt_record",
    "encrypt_stream",
    "encrypted_size",
    "generate_data_key",
    "generate_x25519_keypair",
    "iter_decrypt",
    "iter_encrypt",
    "record_associated_data",
    "unwrap_data_key",
    "wrap_data_key",
    "x25519_public_key",
]
