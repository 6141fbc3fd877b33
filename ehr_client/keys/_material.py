"""Key generation and public-key derivation per key type; every secret is 32 bytes."""

from __future__ import annotations

from typing import Literal, get_args

import umbral_pre
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from eth_account import Account
from eth_keys import keys as eth_keys

KeyKind = Literal["secp256k1", "x25519", "umbral"]
"""secp256k1: an Ethereum wallet; x25519: key agreement for wrapping data keys; umbral: proxy
re-encryption (a secp256k1 scalar used by umbral-pre)."""

EncryptionKind = Literal["x25519", "umbral"]

KEY_KINDS: tuple[KeyKind, ...] = get_args(KeyKind)
ENCRYPTION_KINDS: tuple[EncryptionKind, ...] = get_args(EncryptionKind)


def generate_secret(kind: KeyKind) -> bytes:
    """Return a fresh 32-byte secret of `kind`.

    The eth-account keyfile writer derives an Ethereum address from whatever it stores, so every
    secret must also be a valid secp256k1 scalar; for x25519 the rare (p < 2**-127) exception is
    simply drawn again.
    """
    while True:
        if kind == "secp256k1":
            secret = bytes(Account.create().key)
        elif kind == "umbral":
            secret = bytes(umbral_pre.SecretKey.random().to_be_bytes())
        else:
            secret = X25519PrivateKey.generate().private_bytes_raw()
        if is_secp256k1_scalar(secret):
            return secret


def public_key(kind: KeyKind, secret: bytes) -> bytes:
    """Derive the public key: secp256k1 and umbral compressed SEC1 (33 bytes), x25519 raw (32).

    Raises:
        ValueError: `secret` is not a valid key of `kind`.
    """
    if len(secret) != 32:
        raise ValueError("a secret key is 32 bytes")
    if kind == "secp256k1":
        return bytes(eth_keys.PrivateKey(secret).public_key.to_compressed_bytes())
    if kind == "umbral":
        return bytes(umbral_pre.SecretKey.from_be_bytes(secret).public_key().to_compressed_bytes())
    if kind == "x25519":
        return X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes_raw()
    raise ValueError(f"unknown key type {kind!r}")


def address(secret: bytes) -> str:
    """The checksummed Ethereum address of a secp256k1 secret."""
    return str(eth_keys.PrivateKey(secret).public_key.to_checksum_address())


def is_secp256k1_scalar(secret: bytes) -> bool:
    try:
        eth_keys.PrivateKey(secret)
    except Exception:  # eth-keys raises its own ValidationError for 0 and values >= n
        return False
    return True
