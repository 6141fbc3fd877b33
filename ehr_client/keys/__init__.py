"""Keys: an encrypted-at-rest keystore for wallets and versioned encryption keys."""

from ehr_client.keys._material import EncryptionKind, KeyKind
from ehr_client.keys.identity import Identity, umbral_public_key
from ehr_client.keys.keystore import DEFAULT_SCRYPT_N, EncryptionKey, KeyInfo, Keystore

__all__ = ["DEFAULT_SCRYPT_N", "EncryptionKey", "EncryptionKind", "Identity", "KeyInfo", "KeyKind", "Keystore",
           "umbral_public_key"]
