"""Turn contract reverts into typed ehr_client errors with messages that say what to do next."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from eth_abi import decode
from eth_utils import function_signature_to_4byte_selector

from ehr_client.chain.abi import ARTIFACT_NAMES, load_artifact
from ehr_client.errors import (
    AccessDenied,
    ConsentRefused,
    EHRError,
    IntegrityError,
    RecordErased,
    RecordNotFound,
    TransactionReverted,
)


def _short(value: object) -> str:
    text = value.hex() if isinstance(value, bytes) else str(value)
    if isinstance(value, bytes):
        text = "0x" + text
    return text if len(text) <= 14 else f"{text[:10]}…{text[-4:]}"


_HINTS: dict[str, tuple[type[EHRError], Callable[[dict[str, Any]], str]]] = {
    "ConsentUnauthorized": (
        AccessDenied,
        lambda a: f"{_short(a['caller'])} may not read record {_short(a['recordId'])}: there is no valid grant "
        "covering its scope (never granted, expired or revoked); ask the patient for consent",
    ),
    "RecordUnauthorizedAuthor": (
        AccessDenied,
        lambda a: f"{_short(a['author'])} may not write records of patient {_short(a['patient'])} in scope "
        f"{a['scope']}: the author needs an active provider/lab membership and an amend grant from the patient",
    ),
    "RecordInvalidProof": (
        IntegrityError,
        lambda a: f"the chain does not place this record at position {a['index']} of batch {_short(a['batchId'])}: "
        "the proof or the leaf was altered, or the batch was never anchored",
    ),
    "RecordNotPatient": (
        AccessDenied,
        lambda a: f"only the record's patient may erase record {_short(a['recordId'])}",
    ),
    "ConsortiumNotGovernor": (
        AccessDenied,
        lambda a: f"{_short(a['caller'])} is not a governor of the consortium",
    ),
    "ConsentBreakGlassNotProvider": (
        AccessDenied,
        lambda a: f"{_short(a['caller'])} is not an active provider and cannot use break-glass access",
    ),
    "ConsentRecordErased": (
        RecordErased,
        lambda a: f"record {_short(a['recordId'])} was erased at the patient's request; its content is gone",
    ),
    "RecordNotFound": (
        RecordNotFound,
        lambda a: f"no record {_short(a['recordId'])} on this chain; check the id and the --network",
    ),
    "ConsentInvalidSignature": (
        ConsentRefused,
        lambda a: f"the signature is not patient {_short(a['patient'])}'s over these terms, this chain, this "
        "contract and the current nonce (altered, used already, or signed for another deployment); if the "
        "consent is not in force, ask the patient to sign again",
    ),
    "ConsentSignatureExpired": (
        ConsentRefused,
        lambda a: f"the signature was valid until {a['signatureValidUntil']}; ask the patient to sign again",
    ),
    "ConsentRevocationSuperseded": (
        ConsentRefused,
        lambda a: f"patient {_short(a['patient'])} granted {_short(a['grantee'])} access again after signing this "
        f"revocation (at nonce {a['nonce']}); the later grant stands",
    ),
    "RecordPatientNotRegistered": (
        TransactionReverted,
        lambda a: f"{_short(a['patient'])} is not a registered patient; run `ehr patient register` first",
    ),
    "ConsentInvalidGrantee": (
        TransactionReverted,
        lambda a: f"{_short(a['grantee'])} is the patient: a patient always reads and amends their own records "
        "and cannot grant to themselves",
    ),
    "ClaimUnauthorizedAuthor": (
        AccessDenied,
        lambda a: f"{_short(a['author'])} may not commit claims of record {_short(a['recordId'])}: the record's author "
        "must be an active provider or lab with the patient's amend grant for its scope",
    ),
    "ClaimAlreadyCommitted": (
        TransactionReverted,
        lambda a: f"record {_short(a['recordId'])} already has a claim commitment; it never changes",
    ),
    "ConsentNoGrant": (
        TransactionReverted,
        lambda a: f"patient {_short(a['patient'])} has no grant to {_short(a['grantee'])} to revoke",
    ),
}


@cache
def _error_table() -> dict[bytes, tuple[str, list[str], list[str]]]:
    table: dict[bytes, tuple[str, list[str], list[str]]] = {}
    for contract in ARTIFACT_NAMES:
        for item in load_artifact(contract)["abi"]:
            if item.get("type") != "error":
                continue
            types = [_canonical_type(arg) for arg in item["inputs"]]
            selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
            table[selector] = (item["name"], [arg["name"] for arg in item["inputs"]], types)
    return table


def _canonical_type(arg: dict[str, Any]) -> str:
    if arg["type"].startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in arg["components"])
        return f"({inner}){arg['type'][5:]}"
    return str(arg["type"])


def decode_revert(data: bytes) -> tuple[str, dict[str, Any]] | None:
    """Name and arguments of a custom error from revert data, or None if unknown."""
    entry = _error_table().get(bytes(data[:4]))
    if entry is None:
        return None
    name, names, types = entry
    try:
        values = decode(types, bytes(data[4:]))
    except Exception:
        return None
    return name, dict(zip(names, values, strict=True))


def revert_error(data: bytes | None, *, action: str) -> EHRError:
    """The typed error for a revert of `action` (e.g. "grant access"), with a helpful message."""
    decoded = decode_revert(data) if data else None
    if decoded is None:
        error: EHRError = TransactionReverted(
            f"{action} failed: the transaction reverted without a known reason; check the network and addresses"
        )
        return error
    name, args = decoded
    cls, hint = _HINTS.get(name, (TransactionReverted, None))
    message = hint(args) if hint else f"{name}({', '.join(f'{k}={_short(v)}' for k, v in args.items())})"
    error = TransactionReverted(f"{action} failed: {message}", error_name=name, error_args=args)
    if cls is not TransactionReverted:
        error = cls(f"{action} failed: {message}")
    error.error_name = name  # type: ignore[attr-defined]
    error.error_args = args  # type: ignore[attr-defined]
    return error
