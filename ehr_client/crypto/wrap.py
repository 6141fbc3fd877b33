"""Wrapping a data key for one recipient: X25519 + HKDF-SHA256 + AES-256-GCM (ECIES-style).

A wrapped key is 93 bytes::

    version (1) = 1 | ephemeral X25519 public key (32) | nonce (12) | encrypted data key (32) + tag (16)

The sender makes a fresh ephemeral key pair per wrap (or, with a `KeyWrapper`, one per recipient
for the records of one batch, each wrap still with its own nonce), derives a key-encryption key with
HKDF-SHA256 over the shared secret, with ``info = label || recipient public key || ephemeral public
key`` (so the wrap is bound to both keys), and seals the data key with AES-256-GCM. The associated
data is the first 45 bytes of the wrapped key followed by the caller's `associated_data`, which
should be `record_associated_data(record_id, version)`.
"""

from __future__ import annotations

import os
from typing import NewType

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ehr_client.crypto._format import DATA_KEY_SIZE, check_data_key
from ehr_client.crypto.keys import DataKey
from ehr_client.errors import DecryptionError

__all__ = ["KeyWrapper", "WRAPPED_KEY_SIZE", "WRAP_FORMAT_VERSION", "WrappedKey", "unwrap_data_key", "wrap_data_key"]

WrappedKey = NewType("WrappedKey", bytes)
"""A data key sealed to one recipient's X25519 public key."""

WRAP_FORMAT_VERSION = 1
_KEY_SIZE = 32
_NONCE_SIZE = 12
_HEADER_SIZE = 1 + _KEY_SIZE + _NONCE_SIZE
WRAPPED_KEY_SIZE = _HEADER_SIZE + DATA_KEY_SIZE + 16
_LABEL = b"ehr_client/wrap/v1"
MAX_WRAPS_PER_EPHEMERAL = 1024
"""A `KeyWrapper` makes a new ephemeral key after this many wraps to one recipient (a batch's most
records): random 96-bit nonces under one key-encryption key stay far from colliding."""


def _key_encryption_key(shared_secret: bytes, recipient_public_key: bytes, ephemeral_public_key: bytes) -> AESGCM:
    info = _LABEL + recipient_public_key + ephemeral_public_key
    return AESGCM(HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared_secret))


class _Ephemeral:
    """One ephemeral key's key-encryption key for one recipient."""

    def __init__(self, recipient_public_key: bytes) -> None:
        ephemeral = X25519PrivateKey.generate()
        try:
            shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient_public_key))
        except ValueError:
            raise ValueError("the recipient public key is not a usable 32-byte X25519 key: fetch it again from the "
                             "key registry") from None
        self.public = ephemeral.public_key().public_bytes_raw()
        self.kek = _key_encryption_key(shared, recipient_public_key, self.public)
        self.uses = 0

    def wrap(self, data_key: bytes, associated_data: bytes) -> WrappedKey:
        check_data_key(data_key)
        self.uses += 1
        header = bytes([WRAP_FORMAT_VERSION]) + self.public + os.urandom(_NONCE_SIZE)
        sealed = self.kek.encrypt(header[1 + _KEY_SIZE :], bytes(data_key), header + associated_data)
        return WrappedKey(header + sealed)


def wrap_data_key(data_key: bytes, recipient_public_key: bytes, *, associated_data: bytes) -> WrappedKey:
    """Seal `data_key` so only the holder of the matching private key can recover it.

    Raises:
        ValueError: the data key is not 32 bytes, or the public key is not a usable X25519 key.
    """
    check_data_key(data_key)
    return _Ephemeral(bytes(recipient_public_key)).wrap(data_key, associated_data)


class KeyWrapper:
    """`wrap_data_key` for the many records of one batch: one ephemeral key (one X25519 exchange)
    per recipient, renewed after `MAX_WRAPS_PER_EPHEMERAL` wraps. The wrapped keys are those
    `wrap_data_key` makes (readers open them unchanged); each has its own nonce, and its associated data
    binds it to its record, so a wrapped key moved to another record does not open. The data keys
    stay one per record. Wraps of one recipient by one wrapper share their ephemeral public key,
    which only shows they were sealed together (as their batch manifest says anyway)."""

    def __init__(self) -> None:
        self._ephemerals: dict[bytes, _Ephemeral] = {}

    def wrap(self, data_key: bytes, recipient_public_key: bytes, *, associated_data: bytes) -> WrappedKey:
        """As `wrap_data_key`."""
        public = bytes(recipient_public_key)
        ephemeral = self._ephemerals.get(public)
        if ephemeral is None or ephemeral.uses >= MAX_WRAPS_PER_EPHEMERAL:
            ephemeral = self._ephemerals[public] = _Ephemeral(public)
        return ephemeral.wrap(data_key, associated_data)


def unwrap_data_key(wrapped: bytes, recipient_private_key: bytes, *, associated_data: bytes) -> DataKey:
    """Recover the data key from `wrapped` with the recipient's raw X25519 private key.

    Raises:
        DecryptionError: whatever went wrong (wrong key, other record, altered or malformed bytes).
    """
    wrapped = bytes(wrapped)
    if len(wrapped) != WRAPPED_KEY_SIZE or wrapped[0] != WRAP_FORMAT_VERSION:
        raise DecryptionError()
    ephemeral_public = wrapped[1 : 1 + _KEY_SIZE]
    try:
        private = X25519PrivateKey.from_private_bytes(recipient_private_key)
        shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
        kek = _key_encryption_key(shared, private.public_key().public_bytes_raw(), ephemeral_public)
        data_key = kek.decrypt(wrapped[1 + _KEY_SIZE : _HEADER_SIZE], wrapped[_HEADER_SIZE:], wrapped[:_HEADER_SIZE] + associated_data)
    except (ValueError, TypeError, InvalidTag):
        raise DecryptionError() from None
    return DataKey(data_key)
