"""EIP-712 typed data for consent that a patient signs and anyone relays.

The domain binds chain id and verifying contract, the message binds the patient's current nonce
and a deadline, so a signature is valid once, on one chain, for one deployment, until a time.
The type strings must match `ConsentManager.GRANT_TYPEHASH` and `REVOKE_TYPEHASH`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data

DOMAIN_NAME = "EHR ConsentManager"
DOMAIN_VERSION = "1"

_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
GRANT_TYPE = [
    {"name": "patient", "type": "address"},
    {"name": "grantee", "type": "address"},
    {"name": "scopes", "type": "uint64"},
    {"name": "access", "type": "uint8"},
    {"name": "expiresAt", "type": "uint64"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]
REVOKE_TYPE = [
    {"name": "patient", "type": "address"},
    {"name": "grantee", "type": "address"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]


@dataclass(frozen=True)
class Domain:
    """Where a signature is valid: one chain, one ConsentManager deployment."""

    chain_id: int
    verifying_contract: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }


def grant_typed_data(
    domain: Domain,
    *,
    patient: str,
    grantee: str,
    scopes: int,
    access: int,
    expires_at: int,
    nonce: int,
    deadline: int,
) -> dict[str, Any]:
    """The full EIP-712 document a patient signs to grant access (what a wallet displays)."""
    return {
        "types": {"EIP712Domain": _DOMAIN_TYPE, "Grant": GRANT_TYPE},
        "primaryType": "Grant",
        "domain": domain.as_dict(),
        "message": {
            "patient": patient,
            "grantee": grantee,
            "scopes": scopes,
            "access": access,
            "expiresAt": expires_at,
            "nonce": nonce,
            "deadline": deadline,
        },
    }


def revoke_typed_data(domain: Domain, *, patient: str, grantee: str, nonce: int, deadline: int) -> dict[str, Any]:
    """The full EIP-712 document a patient signs to revoke a grant."""
    return {
        "types": {"EIP712Domain": _DOMAIN_TYPE, "Revoke": REVOKE_TYPE},
        "primaryType": "Revoke",
        "domain": domain.as_dict(),
        "message": {"patient": patient, "grantee": grantee, "nonce": nonce, "deadline": deadline},
    }


def sign_typed_data(private_key: bytes | str, typed_data: dict[str, Any]) -> bytes:
    """Sign a typed-data document; returns the 65-byte r||s||v signature."""
    signed = Account.sign_message(encode_typed_data(full_message=typed_data), private_key)
    return bytes(signed.signature)


def recover_typed_data_signer(typed_data: dict[str, Any], signature: bytes) -> str:
    """The address that signed `typed_data`, for relayers that check before they pay gas."""
    return str(Account.recover_message(encode_typed_data(full_message=typed_data), signature=signature))
