"""What one event or call says for an audit trail: who acted, on whose records, which record, and a
one-line description. Descriptions hold addresses, record ids, categories and times only.

Events of contracts added later (a custodian key-release contract, ...) plug in with
:func:`register_event`; unknown events still appear, with the transaction sender as actor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ehr_client.chain.types import Access, Action, KeyType, Role
from ehr_client.records import describe
from ehr_client.records.purpose import purpose_of_hash

ZERO32 = "0x" + "00" * 32
ACCESS = {int(a): a.name.lower() for a in Access}
ROLES = {int(r): r.name.lower().replace("_", " ") for r in Role}
KEY_TYPES = {int(KeyType.NONE): "none", int(KeyType.X25519): "X25519", int(KeyType.SECP256K1): "secp256k1",
             int(KeyType.UMBRAL): "Umbral"}
ACTIONS = {int(a): a.name.lower().replace("_", " ") for a in Action}


@dataclass(frozen=True)
class Facts:
    """The audit meaning of one event or call. Addresses are checksummed; record ids 0x-hex."""

    actor: str | None
    patient: str | None = None
    subject: str | None = None
    record_id: str | None = None
    related_record: str | None = None
    detail: str = ""


FactsFn = Callable[[Mapping[str, Any], str | None], Facts]
"""(decoded event args, transaction sender) -> Facts."""


def scopes(bits: Any) -> str:
    return ",".join(describe(int(bits))) or "none"


def iso(timestamp: Any) -> str:
    return datetime.fromtimestamp(int(timestamp), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _record(value: Any) -> str | None:
    return None if value is None or value == ZERO32 else str(value)


def _record_added(a: Mapping[str, Any], sender: str | None) -> Facts:
    previous = _record(a["previousId"])
    detail = f"wrote record ({scopes(a['scope'])})" + (f" amending {previous}" if previous else "")
    return Facts(a["author"], a["patient"], record_id=a["recordId"], related_record=previous, detail=detail)


def _granted(a: Mapping[str, Any], sender: str | None) -> Facts:
    relayed = f" (relayed by {sender})" if sender and sender != a["patient"] else ""
    access = ACCESS.get(int(a["access"]), "?")
    known = purpose_of_hash(a.get("purposeHash"))
    purpose = f" for {known.word}" if known else (" for an unknown purpose" if a.get("purposeHash") else "")
    return Facts(a["patient"], a["patient"], a["grantee"],
                 detail=f"granted {access} on {scopes(a['scopes'])} to {a['grantee']}{purpose} "
                        f"until {iso(a['expiresAt'])}{relayed}")


def _revoked(a: Mapping[str, Any], sender: str | None) -> Facts:
    relayed = f" (relayed by {sender})" if sender and sender != a["patient"] else ""
    return Facts(a["patient"], a["patient"], a["grantee"], detail=f"revoked access of {a['grantee']}{relayed}")


def _requested(a: Mapping[str, Any], sender: str | None) -> Facts:
    emergency = " under BREAK-GLASS" if a["emergency"] else ""
    return Facts(a["reader"], a["patient"], record_id=a["recordId"], detail=f"opened record{emergency}")


def _activated(a: Mapping[str, Any], sender: str | None) -> Facts:
    return Facts(a["approver"], a["patient"], a["requester"],
                 detail=f"confirmed break-glass access of {a['requester']} (reason {a['reason']}) "
                        f"until {iso(a['expiresAt'])}")


def _proposal(a: Mapping[str, Any], sender: str | None) -> Facts:
    action = ACTIONS.get(int(a["action"]), "?")
    value = f" as {ROLES.get(int(a['value']), '?')}" if int(a["action"]) == 0 else ""
    value = f" to {a['value']}" if int(a["action"]) == 4 else value
    return Facts(a["proposer"], subject=a["target"],
                 detail=f"proposed #{a['proposalId']}: {action} {a['target']}{value} (open until {iso(a['expiresAt'])})")


_FACTS: dict[tuple[str, str], FactsFn] = {
    ("RecordRegistry", "PatientRegistered"): lambda a, s: Facts(a["patient"], a["patient"], detail="registered as patient"),
    ("RecordRegistry", "RecordAdded"): _record_added,
    ("RecordRegistry", "RecordAmended"): lambda a, s: Facts(
        a["author"], record_id=a["recordId"], related_record=_record(a["previousId"]),
        detail=f"amended record {a['previousId']}"),
    ("RecordRegistry", "RecordTombstoned"): lambda a, s: Facts(
        s or a["patient"], a["patient"], record_id=a["recordId"], detail="erased record (tombstone)"),
    ("RecordRegistry", "BatchAnchored"): lambda a, s: Facts(
        a["author"], a["patient"], related_record=a["batchId"],
        detail=f"anchored a batch of {a['leafCount']} records (batch {a['batchId']})"),
    ("ClaimRegistry", "ClaimsCommitted"): lambda a, s: Facts(
        a["author"], a["patient"], record_id=a["recordId"], detail="committed to the record's claim (hidden)"),
    ("ClaimRegistry", "ClaimProven"): lambda a, s: Facts(
        a["verifier"], a["patient"], record_id=a["recordId"],
        detail=f"checked a zero-knowledge proof about the record (predicate {a['predicate']})"),
    ("ConsentManager", "AccessGranted"): _granted,
    ("ConsentManager", "AccessRevoked"): _revoked,
    ("ConsentManager", "AccessRequested"): _requested,
    ("ConsentManager", "BreakGlassRequested"): lambda a, s: Facts(
        a["requester"], a["patient"], detail=f"requested break-glass access (reason {a['reason']})"),
    ("ConsentManager", "BreakGlassActivated"): _activated,
    ("Consortium", "ProposalCreated"): _proposal,
    ("Consortium", "ProposalApproved"): lambda a, s: Facts(a["governor"], detail=f"approved proposal #{a['proposalId']}"),
    ("Consortium", "ProposalExecuted"): lambda a, s: Facts(a["executor"], detail=f"executed proposal #{a['proposalId']}"),
    ("Consortium", "MemberAdmitted"): lambda a, s: Facts(
        s, subject=a["account"], detail=f"admitted {a['account']} as {ROLES.get(int(a['role']), '?')}"),
    ("Consortium", "MemberSuspended"): lambda a, s: Facts(
        a["governor"], subject=a["account"], detail=f"suspended member {a['account']}"),
    ("Consortium", "MemberReinstated"): lambda a, s: Facts(
        s, subject=a["account"], detail=f"reinstated member {a['account']}"),
    ("Consortium", "GovernorAdded"): lambda a, s: Facts(s, subject=a["governor"], detail=f"added governor {a['governor']}"),
    ("Consortium", "GovernorRemoved"): lambda a, s: Facts(
        s, subject=a["governor"], detail=f"removed governor {a['governor']}"),
    ("Consortium", "ThresholdChanged"): lambda a, s: Facts(s, detail=f"set the approval threshold to {a['threshold']}"),
    ("KeyRegistry", "KeyPublished"): lambda a, s: Facts(
        a["account"], detail=f"published {KEY_TYPES.get(int(a['keyType']), '?')} key v{a['version']}"),
    ("KeyRegistry", "KeyRotated"): lambda a, s: Facts(
        a["account"],
        detail=f"rotated {KEY_TYPES.get(int(a['keyType']), '?')} key v{a['previousVersion']} -> v{a['version']}"),
    ("KeyRegistry", "KeyRevoked"): lambda a, s: Facts(
        a["account"], detail=f"revoked {KEY_TYPES.get(int(a['keyType']), '?')} key v{a['version']}"),
}


def register_event(contract: str, event: str, facts: FactsFn) -> None:
    """Say how `contract`'s `event` reads in an audit trail (extension point for new contracts)."""
    _FACTS[(contract, event)] = facts


def event_facts(contract: str, event: str, args: Mapping[str, Any], sender: str | None) -> Facts:
    fn = _FACTS.get((contract, event))
    if fn is None:
        return Facts(sender, detail=f"{contract}.{event}")
    return fn(args, sender)


_PATIENT_CALLS = {"grant", "revoke", "registerPatient", "tombstone", "tombstoneBatched"}


def call_facts(function: str, args: Mapping[str, Any], sender: str) -> Facts:
    """What a (failed) call tried to do, from its decoded arguments."""
    patient = args.get("patient")
    if patient is None and function in _PATIENT_CALLS:
        patient = sender
    subject = args.get("grantee") or args.get("target") or args.get("account") or args.get("requester")
    record = args.get("recordId") or _record(args.get("previousId"))
    return Facts(sender, patient, subject, record, _record(args.get("previousId")),
                 detail=f"tried {function}" + (f" on record {record}" if record else ""))
