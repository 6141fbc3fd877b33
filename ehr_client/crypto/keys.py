"""Key material: per-record data keys and X25519 key pairs for wrapping them."""

from __future__ import annotations

import os
from typing import NamedTuple, NewType

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ehr_client.crypto._format import DATA_KEY_SIZE

__all__ = ["DATA_KEY_SIZE", "DataKey", "X25519KeyPair", "generate_data_key", "generate_x25519_keypair", "x25519_public_key"]

DataKey = NewType("DataKey", bytes)
"""A 256-bit AES key that encrypts exactly one record version; never stored unwrapped."""


class X25519KeyPair(NamedTuple):
    """Raw 32-byte X25519 keys; `private_key` is secret, `public_key` is what goes on chain."""

    private_key: bytes
    public_key: bytes

    def __repr__(self) -> str:
        return f"X25519KeyPair(private_key=<redacted>, public_key={self.public_key.hex()})"


def generate_data_key() -> DataKey:
    """A fresh random 256-bit data key from the OS CSPRNG."""
    return DataKey(os.urandom(DATA_KEY_SIZE))


def generate_x25519_keypair() -> X25519KeyPair:
    """A fresh X25519 key pair as raw bytes."""
    private = X25519PrivateKey.generate()
    return X25519KeyPair(private.private_bytes_raw(), private.public_key().public_bytes_raw())


def x25519_public_key(private_key: bytes) -> bytes:
    """The raw public key of a raw 32-byte X25519 private key."""
    return X25519PrivateKey.from_private_bytes(private_key).public_key().public_bytes_raw()
