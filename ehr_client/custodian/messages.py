"""EIP-712 messages between patients, grantees and key custodians, and the custodians' receipts.

The domain binds chain id and the deployment's ConsentManager; every request names the one
custodian it is for and carries an issue time and a random nonce, so a signature works once, at
one custodian, on one deployment, for a few minutes. Custodians rebuild the typed data from their
own domain and the endpoint's message type: a caller never chooses what was signed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys.exceptions import BadSignature
from eth_utils import is_address, to_checksum_address

from ehr_client.custodian.errors import CustodianRefused

DOMAIN_NAME = "EHR Key Custodian"
DOMAIN_VERSION = "1"

_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def _fields(*pairs: str) -> list[dict[str, str]]:
    return [{"name": name, "type": kind} for name, kind in (p.split(":") for p in pairs)]


TYPES: dict[str, list[dict[str, str]]] = {
    "Enroll": _fields("custodian:address", "grantee:address", "issuedAt:uint64", "nonce:bytes32"),
    "OpenSession": _fields("custodian:address", "grantee:address", "issuedAt:uint64", "nonce:bytes32"),
    "KeyRequest": _fields(
        "custodian:address", "grantee:address", "recordId:bytes32", "accessTx:bytes32", "session:bytes32",
        "issuedAt:uint64", "nonce:bytes32",
    ),
    "Deposit": _fields(
        "custodian:address", "patient:address", "grantee:address", "fragments:bytes32", "issuedAt:uint64",
        "nonce:bytes32",
    ),
    "Destroy": _fields("custodian:address", "patient:address", "recordId:bytes32", "issuedAt:uint64", "nonce:bytes32"),
    "AuditQuery": _fields("custodian:address", "patient:address", "issuedAt:uint64", "nonce:bytes32"),
    "ErasureReceipt": _fields(
        "custodian:address", "patient:address", "recordId:bytes32", "destroyed:uint32", "remaining:uint32",
        "erasedAt:uint64",
    ),
    # A custodian's answer to "who are you?": its address is on chain for anyone to copy, so only a
    # signature over the asker's fresh challenge shows the server at a URL holds that custodian's key.
    "Identity": _fields("custodian:address", "challenge:bytes32"),
}
SIGNER_FIELD = {
    "Enroll": "grantee", "OpenSession": "grantee", "KeyRequest": "grantee", "Deposit": "patient", "Destroy": "patient",
    "AuditQuery": "patient", "ErasureReceipt": "custodian", "Identity": "custodian",
}


@dataclass(frozen=True)
class CustodianDomain:
    """Where custodian signatures are valid: one chain, one ConsentManager deployment."""

    chain_id: int
    consent: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": self.chain_id,
                "verifyingContract": to_checksum_address(self.consent)}


def typed_data(domain: CustodianDomain, kind: str, message: dict[str, Any]) -> dict[str, Any]:
    return {
        "types": {"EIP712Domain": _DOMAIN_TYPE, kind: TYPES[kind]},
        "primaryType": kind,
        "domain": domain.as_dict(),
        "message": message,
    }


def new_nonce() -> str:
    return "0x" + secrets.token_hex(32)


def sign(private_key: bytes, domain: CustodianDomain, kind: str, message: dict[str, Any]) -> str:
    """The 65-byte signature over `message`, as 0x-hex."""
    signed = Account.sign_message(encode_typed_data(full_message=typed_data(domain, kind, message)), private_key)
    return "0x" + bytes(signed.signature).hex()


def normalize(kind: str, message: dict[str, Any]) -> dict[str, Any]:
    """The message with exactly the fields of `kind`, each checked and in canonical form.

    Raises:
        CustodianRefused("malformed"): a field is missing, extra or of the wrong form.
    """
    fields = {f["name"]: f["type"] for f in TYPES[kind]}
    if set(message) != set(fields):
        raise CustodianRefused("malformed", f"a {kind} message has exactly the fields {', '.join(fields)}")
    out: dict[str, Any] = {}
    for name, kind_ in fields.items():
        value = message[name]
        try:
            if kind_ == "address":
                if not isinstance(value, str) or not is_address(value):
                    raise ValueError
                out[name] = str(to_checksum_address(value))
            elif kind_ == "bytes32":
                raw = bytes.fromhex(str(value).removeprefix("0x"))
                if len(raw) != 32:
                    raise ValueError
                out[name] = "0x" + raw.hex()
            else:
                number = int(value)
                bits = int(kind_.removeprefix("uint"))
                if isinstance(value, bool) or not 0 <= number < 1 << bits:
                    raise ValueError
                out[name] = number
        except (ValueError, TypeError):
            raise CustodianRefused("malformed", f"field {name} of the {kind} message is not a valid {kind_}") from None
    return out


def recover(domain: CustodianDomain, kind: str, message: dict[str, Any], signature: str) -> str:
    """The checksummed address that signed `message`.

    Raises:
        CustodianRefused("bad-signature"): the signature is malformed or unrecoverable.
    """
    try:
        raw = bytes.fromhex(signature.removeprefix("0x"))
        if len(raw) != 65:
            raise ValueError
        return str(Account.recover_message(encode_typed_data(full_message=typed_data(domain, kind, message)),
                                           signature=raw))
    except (ValueError, TypeError, BadSignature):
        raise CustodianRefused("bad-signature", f"the {kind} signature is malformed or unrecoverable") from None


def check_signed(domain: CustodianDomain, kind: str, message: dict[str, Any], signature: str) -> dict[str, Any]:
    """The normalized message, once its signer is shown to be the account it names.

    Raises:
        CustodianRefused: malformed message, or "bad-signature" when someone else signed it.
    """
    clean = normalize(kind, message)
    signer = recover(domain, kind, clean, signature)
    expected = clean[SIGNER_FIELD[kind]]
    if signer != expected:
        raise CustodianRefused("bad-signature", f"the {kind} request is not signed by {expected}")
    return clean
