"""Encryption keys derived from a wallet's signature, so a browser wallet (which signs but cannot
decrypt) and this client yield the same X25519 and Umbral keys.

The wallet signs one fixed EIP-712 document (:func:`derivation_typed_data`)::

    domain   {name: "EHR key derivation", version: "1", chainId, verifyingContract: KeyRegistry}
    message  KeyDerivation(string statement, address account, uint32 keyGeneration)

The statement tells the person what the signature does. The domain names the chain and the
deployment's KeyRegistry, so a signature made for one deployment derives nothing for another
and cannot be confused with a consent (another domain name and type).

From the 65-byte signature r || s || v:

1. It must be canonical: r in [1, n-1], s in [1, n/2] (low-s, as Ethereum wallets make) and
   v 27 or 28; anything else is refused (:class:`KeyDerivationRefused`), never normalised,
   so every implementation derives from the same bytes.
2. ``ikm = r || s`` (64 bytes; v adds nothing, it only names which of two points r is).
3. Per key kind K in {"x25519", "umbral"}::

       okm    = HKDF-SHA256(ikm, salt = "EHR wallet-derived keys v1 salt " || K,
                            info = "EHR wallet-derived keys v1 " || K || " secret key", L = 48)
       secret = (int_be(okm) mod (n - 1)) + 1,  as 32 bytes big-endian

   with n the secp256k1 group order: the "extra random bits" method of FIPS 186-5 A.2.1, which
   always lands in [1, n-1] with bias below 2**-128, so no retry loop is needed. The Umbral key
   must be such a scalar (``umbral_pre.SecretKey.from_be_bytes``); the X25519 key is one too,
   because the keystore's eth-account keyfile stores only valid secp256k1 scalars, and X25519
   clamps whatever 32 bytes it is given.

Because the signature is the only secret input, wallets must sign deterministically (RFC 6979):
the client asks twice and refuses (:class:`NonDeterministicWallet`) when the two differ. It also
refuses a signature that does not recover to the account it asked. portal/src/keys.js is the
browser half and must stay byte-identical (tests/portal_keys checks both against each other).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import umbral_pre
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_keys.exceptions import BadSignature
from eth_utils import is_address, to_checksum_address

from ehr_client.errors import KeyDerivationRefused, NonDeterministicWallet

__all__ = [
    "DOMAIN_NAME", "DOMAIN_VERSION", "STATEMENT", "DerivedKeys", "check_signature", "derivation_typed_data",
    "derive_from_account", "derive_from_signer", "derive_keys",
]

DOMAIN_NAME: Final = "EHR key derivation"
DOMAIN_VERSION: Final = "1"
STATEMENT: Final = (
    "Sign this only on your own health-record portal. This signature unlocks the keys that decrypt "
    "your health records: anyone who obtains it can read them."
)
MAX_GENERATION: Final = 2**32 - 1
MAX_CHAIN_ID: Final = 2**53 - 1
"""Chain ids a browser holds exactly as a JSON number (wallets and keys.js use numbers)."""
SECP256K1_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

_TYPES: Final = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "KeyDerivation": [
        {"name": "statement", "type": "string"},
        {"name": "account", "type": "address"},
        {"name": "keyGeneration", "type": "uint32"},
    ],
}
_SALT: Final = b"EHR wallet-derived keys v1 salt "
_INFO: Final = b"EHR wallet-derived keys v1 "
_OKM_BYTES: Final = 48


@dataclass(frozen=True)
class DerivedKeys:
    """Keys derived from one signature. Public keys: X25519 raw (32 bytes), Umbral compressed
    SEC1 (33 bytes). Secrets are 32 bytes and kept out of repr."""

    x25519_public: bytes
    umbral_public: bytes
    x25519_secret: bytes = field(repr=False)
    umbral_secret: bytes = field(repr=False)


def derivation_typed_data(*, chain_id: int, verifying_contract: str, account: str, generation: int = 1) -> dict[str, Any]:
    """The EIP-712 document a wallet signs to derive `account`'s keys on one deployment: what
    ``eth_signTypedData_v4`` takes. `verifying_contract` is the deployment's KeyRegistry;
    `generation` starts at 1 and is raised to rotate derived keys.

    Raises:
        KeyDerivationRefused: a bad address, chain id or generation.
    """
    if not isinstance(chain_id, int) or isinstance(chain_id, bool) or not 0 < chain_id <= MAX_CHAIN_ID:
        raise KeyDerivationRefused(f"the chain id must be a whole number from 1 to {MAX_CHAIN_ID}: read it from the deployment file")
    if not isinstance(generation, int) or isinstance(generation, bool) or not 1 <= generation <= MAX_GENERATION:
        raise KeyDerivationRefused(f"the key generation must be a whole number from 1 to {MAX_GENERATION}")
    for name, value in (("verifyingContract", verifying_contract), ("account", account)):
        if not isinstance(value, str) or not is_address(value):
            raise KeyDerivationRefused(f"{name} must be a 20-byte hex address")
    return {
        "types": {name: [dict(f) for f in fields] for name, fields in _TYPES.items()},
        "primaryType": "KeyDerivation",
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": to_checksum_address(verifying_contract),
        },
        "message": {"statement": STATEMENT, "account": to_checksum_address(account), "keyGeneration": generation},
    }


def check_signature(signature: bytes) -> bytes:
    """The input key material (r || s) of a canonical 65-byte signature.

    Raises:
        KeyDerivationRefused: wrong length, r or s out of range, high s, or v not 27/28.
    """
    if not isinstance(signature, (bytes, bytearray)) or len(signature) != 65:
        raise KeyDerivationRefused("a key-derivation signature is 65 bytes (r || s || v): pass what the wallet returned")
    r, s, v = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big"), signature[64]
    if not 0 < r < SECP256K1_N or not 0 < s <= SECP256K1_N // 2 or v not in (27, 28):
        raise KeyDerivationRefused(
            "the signature is not canonical (it needs low s and v = 27 or 28, as Ethereum wallets sign); "
            "keys are only derived from canonical signatures: sign with another wallet"
        )
    return bytes(signature[:64])


def derive_keys(signature: bytes) -> DerivedKeys:
    """The X25519 and Umbral keys of a canonical signature over :func:`derivation_typed_data`.

    Raises:
        KeyDerivationRefused: the signature is not canonical.
    """
    ikm = check_signature(signature)
    x25519_secret, umbral_secret = _scalar(ikm, b"x25519"), _scalar(ikm, b"umbral")
    return DerivedKeys(
        x25519_public=X25519PrivateKey.from_private_bytes(x25519_secret).public_key().public_bytes_raw(),
        umbral_public=bytes(umbral_pre.SecretKey.from_be_bytes(umbral_secret).public_key().to_compressed_bytes()),
        x25519_secret=x25519_secret,
        umbral_secret=umbral_secret,
    )


def derive_from_signer(
    sign: Callable[[dict[str, Any]], bytes], *, account: str, chain_id: int, verifying_contract: str, generation: int = 1
) -> DerivedKeys:
    """Ask `sign` (a wallet's ``eth_signTypedData_v4``) twice for the derivation document and
    derive from the signature if both agree and it is `account`'s.

    Raises:
        NonDeterministicWallet: the two signatures differ.
        KeyDerivationRefused: not canonical, or made by another account than `account`.
    """
    typed = derivation_typed_data(chain_id=chain_id, verifying_contract=verifying_contract, account=account,
                                  generation=generation)
    first, second = bytes(sign(typed)), bytes(sign(typed))
    if first != second:
        raise NonDeterministicWallet(
            "the wallet gave two different signatures for the same key-derivation message, so the keys it "
            "would derive could never be derived again: use a wallet that signs deterministically (RFC 6979)"
        )
    keys = derive_keys(first)  # canonical first: recovery accepts forms the derivation refuses
    try:
        signer = Account.recover_message(encode_typed_data(full_message=typed), signature=first)
    except (BadSignature, ValueError):
        raise KeyDerivationRefused("the wallet's signature does not verify: sign again with the same account") from None
    if signer != to_checksum_address(account):
        raise KeyDerivationRefused(
            f"the signature was made by {signer}, not by {to_checksum_address(account)}: "
            "switch the wallet to that account and sign again"
        )
    return keys


def derive_from_account(
    account: LocalAccount, *, chain_id: int, verifying_contract: str, generation: int = 1
) -> DerivedKeys:
    """:func:`derive_from_signer` with a local eth-account wallet (what the CLI unlocks)."""
    def sign(typed: dict[str, Any]) -> bytes:
        return bytes(account.sign_message(encode_typed_data(full_message=typed)).signature)

    return derive_from_signer(sign, account=account.address, chain_id=chain_id,
                              verifying_contract=verifying_contract, generation=generation)


def _scalar(ikm: bytes, kind: bytes) -> bytes:
    okm = HKDF(algorithm=hashes.SHA256(), length=_OKM_BYTES, salt=_SALT + kind,
               info=_INFO + kind + b" secret key").derive(ikm)
    return (int.from_bytes(okm, "big") % (SECP256K1_N - 1) + 1).to_bytes(32, "big")
