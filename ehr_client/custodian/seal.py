"""Sealing bytes to a custodian's published X25519 key, and the custodian's at-rest encryption.

`seal` reuses the data-key wrap of `ehr_client.crypto`: a fresh AES-256-GCM key seals the
payload and is itself wrapped to the recipient (X25519 + HKDF), both bound to the same
associated data. A key fragment sealed this way is useless to anyone but the custodian it was
meant for, whatever URL it travelled through, and custodians keep it sealed in their database.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ehr_client.crypto import WRAPPED_KEY_SIZE, generate_data_key, unwrap_data_key, wrap_data_key
from ehr_client.errors import DecryptionError

_NONCE = 12
_FRAGMENT_LABEL = b"ehr-custodian-fragment/v1"


def fragment_associated_data(custodian: str, record_id: bytes, grantee: str) -> bytes:
    """What a sealed key fragment is bound to: the custodian, the record and the grantee."""
    return _FRAGMENT_LABEL + bytes.fromhex(custodian[2:]) + record_id + bytes.fromhex(grantee[2:])


def seal(payload: bytes, recipient_public: bytes, *, associated_data: bytes) -> bytes:
    """wrapped key (93) | nonce (12) | AES-256-GCM(payload)."""
    key = generate_data_key()
    wrapped = wrap_data_key(key, recipient_public, associated_data=associated_data)
    nonce = os.urandom(_NONCE)
    return bytes(wrapped) + nonce + AESGCM(key).encrypt(nonce, payload, bytes(wrapped) + associated_data)


def open_sealed(sealed: bytes, recipient_private: bytes, *, associated_data: bytes) -> bytes:
    """The payload of `seal`. Any failure raises the opaque DecryptionError."""
    if len(sealed) < WRAPPED_KEY_SIZE + _NONCE + 16:
        raise DecryptionError()
    wrapped, nonce, body = sealed[:WRAPPED_KEY_SIZE], sealed[WRAPPED_KEY_SIZE:WRAPPED_KEY_SIZE + _NONCE], \
        sealed[WRAPPED_KEY_SIZE + _NONCE:]
    key = unwrap_data_key(wrapped, recipient_private, associated_data=associated_data)
    try:
        return AESGCM(key).decrypt(nonce, body, wrapped + associated_data)
    except InvalidTag:
        raise DecryptionError() from None


class AtRestKey:
    """AES-256-GCM under a key derived (HKDF) from the custodian's X25519 secret: its TOTP secrets
    are unreadable from a copy of the database alone."""

    def __init__(self, custodian_secret: bytes, *, purpose: bytes) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"ehr-custodian-at-rest/" + purpose)
        self._aead = AESGCM(derived.derive(custodian_secret))

    def encrypt(self, plaintext: bytes, *, associated_data: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, plaintext, associated_data)

    def decrypt(self, sealed: bytes, *, associated_data: bytes) -> bytes:
        try:
            return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], associated_data)
        except (InvalidTag, ValueError):
            raise DecryptionError() from None
