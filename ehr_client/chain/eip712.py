"""EIP-712 typed data for consent that a patient signs in a wallet and anyone relays.

What the wallet shows is the message itself, so every field says what it means in words: one
yes/no per record category (packed into the scope bitmask on chain), `mayAmend` rather than an
access number, the purpose of use as a word, `grantEndsAt` (when access ends) apart from
`signatureValidUntil` (until when a relayer may submit the signature), and a domain named for
the consortium's deployment. The domain binds chain id and verifying contract, the message the
pair's nonce, so a signature is valid once, on one chain, for one deployment, until a time.

This module is the one definition of the types: `TYPES` must hash to the contract's
`GRANT_TYPEHASH`, `CATEGORIES_TYPEHASH` and `REVOKE_TYPEHASH` (tests/consent checks it), and
`typed_data` documents are exactly what `eth_signTypedData_v4` takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys.exceptions import BadSignature
from eth_utils import is_address, keccak, to_checksum_address

from ehr_client.errors import ConsentRefused, InvalidRecord
from ehr_client.records.scopes import Scope

DOMAIN_VERSION = "2"
MAX_DOMAIN_NAME = 31
"""Bytes (UTF-8) of a domain name: OpenZeppelin's EIP712 keeps up to 31 in an immutable; a longer
one would cost a storage read on every signature check."""
MAX_UINT64 = 2**64 - 1
MAX_NONCE = 2**40 - 1


def _field_name(scope: Scope) -> str:
    first, *rest = str(scope.name).lower().split("_")
    return first + "".join(part.title() for part in rest)


CATEGORY_FIELDS: tuple[tuple[str, Scope], ...] = tuple((_field_name(s), s) for s in Scope)
"""(typed-data field, scope bit), in bit order: the names of ehr_client.records.scopes."""
NAMED_SCOPES = sum(int(s) for _, s in CATEGORY_FIELDS)

DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
TYPES: dict[str, list[dict[str, str]]] = {
    "Grant": [
        {"name": "patient", "type": "address"},
        {"name": "grantee", "type": "address"},
        {"name": "categories", "type": "Categories"},
        {"name": "mayAmend", "type": "bool"},
        {"name": "purpose", "type": "string"},
        {"name": "grantEndsAt", "type": "uint64"},
        {"name": "nonce", "type": "uint256"},
        {"name": "signatureValidUntil", "type": "uint64"},
    ],
    "Categories": [{"name": name, "type": "bool"} for name, _ in CATEGORY_FIELDS],
    "Revoke": [
        {"name": "patient", "type": "address"},
        {"name": "grantee", "type": "address"},
        {"name": "nonce", "type": "uint256"},
        {"name": "signatureValidUntil", "type": "uint64"},
    ],
}
_REFERENCED = {"Grant": ("Categories",), "Categories": (), "Revoke": ()}


def encode_type(primary: str) -> str:
    """EIP-712 `encodeType`: the primary type, then the types it references, sorted by name."""
    def one(name: str) -> str:
        fields = ",".join(f"{field['type']} {field['name']}" for field in TYPES[name])
        return f"{name}({fields})"

    return one(primary) + "".join(one(name) for name in sorted(_REFERENCED[primary]))


def typehash(primary: str) -> bytes:
    return keccak(text=encode_type(primary))


@dataclass(frozen=True)
class Domain:
    """Where a signature is valid: one chain, one ConsentManager deployment, named for people."""

    name: str
    chain_id: int
    verifying_contract: str
    version: str = DOMAIN_VERSION

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "chainId": self.chain_id,
            "verifyingContract": to_checksum_address(self.verifying_contract),
        }

    def describe(self) -> str:
        return f"{self.name!r} v{self.version}, chain {self.chain_id}, contract {self.verifying_contract}"


def default_domain_name(network: str) -> str:
    """The domain name when the deployer gives none: still says which deployment it is."""
    room = MAX_DOMAIN_NAME - len("EHR Consent ()")
    return f"EHR Consent ({network.encode()[:room].decode(errors='ignore')})"


def check_domain_name(name: str) -> str:
    """A domain name a wallet can show on one line.

    Raises:
        InvalidRecord: empty, too long, or with control characters.
    """
    if not name.strip() or len(name.encode()) > MAX_DOMAIN_NAME or not name.isprintable():
        raise InvalidRecord(f"the consent domain name must be 1 to {MAX_DOMAIN_NAME} bytes of printable text, "
                            "naming the consortium and deployment, e.g. \"Northside Health (production)\"")
    return name


def deployed_domain(consent_contract: Any, call: Any) -> Domain:
    """The domain a deployed ConsentManager verifies against, read from its ERC-5267
    `eip712Domain()`; `call(fn)` runs a view call (e.g. a bound `ChainClient.call`)."""
    _, name, version, chain_id, contract, _, _ = call(consent_contract.functions.eip712Domain())
    return Domain(str(name), int(chain_id), to_checksum_address(contract), str(version))


def categories(scopes: int) -> dict[str, bool]:
    """One yes/no per named category, for a scope bitmask.

    Raises:
        InvalidRecord: `scopes` has a bit no category names (a wallet could not show it).
    """
    if scopes < 0 or scopes & ~NAMED_SCOPES:
        raise InvalidRecord(f"scope bits {scopes & ~NAMED_SCOPES:#x} have no category name; grant named categories")
    return {name: bool(scopes & int(scope)) for name, scope in CATEGORY_FIELDS}


def scopes_of(flags: Mapping[str, object]) -> int:
    """The scope bitmask of a `categories` mapping (every category present, each a bool)."""
    if set(flags) != {name for name, _ in CATEGORY_FIELDS} or not all(isinstance(v, bool) for v in flags.values()):
        raise InvalidRecord("categories must name every category once, each true or false")
    return sum(int(scope) for name, scope in CATEGORY_FIELDS if flags[name])


def _typed(domain: Domain, primary: str, message: dict[str, Any]) -> dict[str, Any]:
    types: dict[str, Any] = {"EIP712Domain": DOMAIN_TYPE, primary: TYPES[primary]}
    for name in _REFERENCED[primary]:
        types[name] = TYPES[name]
    return {"types": types, "primaryType": primary, "domain": domain.as_dict(), "message": message}


def grant_typed_data(
    domain: Domain,
    *,
    patient: str,
    grantee: str,
    scopes: int,
    may_amend: bool,
    purpose: str,
    grant_ends_at: int,
    nonce: int,
    signature_valid_until: int,
) -> dict[str, Any]:
    """The EIP-712 document a patient signs to grant access: what `eth_signTypedData_v4` takes."""
    return _typed(domain, "Grant", {
        "patient": to_checksum_address(patient),
        "grantee": to_checksum_address(grantee),
        "categories": categories(scopes),
        "mayAmend": may_amend,
        "purpose": purpose,
        "grantEndsAt": grant_ends_at,
        "nonce": nonce,
        "signatureValidUntil": signature_valid_until,
    })


def revoke_typed_data(
    domain: Domain, *, patient: str, grantee: str, nonce: int, signature_valid_until: int
) -> dict[str, Any]:
    """The EIP-712 document a patient signs to revoke a grant."""
    return _typed(domain, "Revoke", {
        "patient": to_checksum_address(patient),
        "grantee": to_checksum_address(grantee),
        "nonce": nonce,
        "signatureValidUntil": signature_valid_until,
    })


@dataclass(frozen=True)
class GrantMessage:
    patient: str
    grantee: str
    scopes: int
    may_amend: bool
    purpose: str
    grant_ends_at: int
    nonce: int
    signature_valid_until: int


@dataclass(frozen=True)
class RevokeMessage:
    patient: str
    grantee: str
    nonce: int
    signature_valid_until: int


def _uint(value: object, limit: int, name: str) -> int:
    number = int(value, 0) if isinstance(value, str) else value
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= limit:
        raise InvalidRecord(f"{name} must be a whole number from 0 to {limit}")
    return number


def _address(value: object, name: str) -> str:
    if not isinstance(value, str) or not is_address(value):
        raise InvalidRecord(f"{name} must be an address")
    return to_checksum_address(value)


def parse_typed_data(doc: object) -> tuple[Domain, GrantMessage | RevokeMessage]:
    """The domain and message of a consent document, checked field by field.

    The document's own `types` must be exactly ours: a file whose types differ showed the wallet
    something other than what the chain verifies.

    Raises:
        InvalidRecord: not a Grant or Revoke of these types, a missing or extra field, a bad value.
    """
    try:
        assert isinstance(doc, dict)
        primary = doc["primaryType"]
        expected = _typed(Domain("", 0, "0x" + "00" * 20), primary, {})["types"]
        if doc["types"] != expected:
            raise InvalidRecord(f"the document's types are not this system's {primary} types; sign what "
                                "`ehr grant --print-typed-data` or `ehr revoke --print-typed-data` prints")
        raw_domain, message = doc["domain"], doc["message"]
        assert isinstance(raw_domain, dict) and isinstance(message, dict)
        if set(raw_domain) != {f["name"] for f in DOMAIN_TYPE} or not isinstance(raw_domain["name"], str) \
                or not isinstance(raw_domain["version"], str):
            raise InvalidRecord("the document's domain must have name, version, chainId and verifyingContract")
        domain = Domain(raw_domain["name"], _uint(raw_domain["chainId"], 2**256 - 1, "chainId"),
                        _address(raw_domain["verifyingContract"], "verifyingContract"), raw_domain["version"])
        if set(message) != {f["name"] for f in TYPES[primary]}:
            raise InvalidRecord(f"the {primary} message must have exactly the fields "
                                f"{', '.join(f['name'] for f in TYPES[primary])}")
        patient, grantee = _address(message["patient"], "patient"), _address(message["grantee"], "grantee")
        nonce = _uint(message["nonce"], MAX_NONCE, "nonce")
        valid_until = _uint(message["signatureValidUntil"], MAX_UINT64, "signatureValidUntil")
        if primary == "Revoke":
            return domain, RevokeMessage(patient, grantee, nonce, valid_until)
        flags, may_amend, purpose = message["categories"], message["mayAmend"], message["purpose"]
        if not isinstance(flags, dict) or not isinstance(may_amend, bool) or not isinstance(purpose, str):
            raise InvalidRecord("categories must be an object of booleans, mayAmend a boolean, purpose a string")
        return domain, GrantMessage(patient, grantee, scopes_of(flags), may_amend, purpose,
                                    _uint(message["grantEndsAt"], MAX_UINT64, "grantEndsAt"), nonce, valid_until)
    except (KeyError, TypeError, AssertionError, ValueError) as exc:
        if isinstance(exc, InvalidRecord):
            raise
        raise InvalidRecord("not an EIP-712 Grant or Revoke document of this system; "
                            "print one with `ehr grant --print-typed-data`") from None


def rebuild_typed_data(domain: Domain, message: GrantMessage | RevokeMessage) -> dict[str, Any]:
    """The canonical document for a parsed message: what the signature must cover."""
    if isinstance(message, GrantMessage):
        return grant_typed_data(domain, patient=message.patient, grantee=message.grantee, scopes=message.scopes,
                                may_amend=message.may_amend, purpose=message.purpose,
                                grant_ends_at=message.grant_ends_at, nonce=message.nonce,
                                signature_valid_until=message.signature_valid_until)
    return revoke_typed_data(domain, patient=message.patient, grantee=message.grantee, nonce=message.nonce,
                             signature_valid_until=message.signature_valid_until)


def check_domain(signed: Domain, deployed: Domain) -> None:
    """Raises ConsentRefused unless a document was made for this deployment."""
    if signed.as_dict() != deployed.as_dict():
        raise ConsentRefused(
            f"this consent was signed for {signed.describe()}, but this deployment is {deployed.describe()}; "
            "the chain would refuse it: ask the patient to sign for this deployment"
        )


def sign_typed_data(private_key: bytes | str, typed_data: dict[str, Any]) -> bytes:
    """Sign a typed-data document; returns the 65-byte r||s||v signature."""
    signed = Account.sign_message(encode_typed_data(full_message=typed_data), private_key)
    return bytes(signed.signature)


def recover_typed_data_signer(typed_data: dict[str, Any], signature: bytes) -> str:
    """The address that signed `typed_data`, for relayers that check before they pay gas.

    Raises:
        ConsentRefused: the bytes are not a valid signature at all.
    """
    try:
        return str(Account.recover_message(encode_typed_data(full_message=typed_data), signature=signature))
    except (BadSignature, ValueError):
        raise ConsentRefused("the signature is malformed (not 65 bytes r||s||v of a valid signature)") from None
