"""FHIR R4 exports of the audit index: `AuditEvent` resources for what happened and `Consent`
resources for grants, in a `Bundle` (type "collection"), validated with fhir.resources' R4B models
(see ehr_client/records/fhir.py for why R4B stands in for R4).

No health data goes in: patients and members appear only as pseudonymous account identifiers
(CAIP-10, ``eip155:<chainId>:<address>``), records by their on-chain id, plus times, transaction
hashes, actions and outcomes. Content hashes and storage pointers are left out as well.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from ehr_client.audit.facts import ACCESS, iso
from ehr_client.audit.index import AuditIndex
from ehr_client.audit.queries import AuditRow
from ehr_client.errors import InvalidRecord
from ehr_client.records import describe
from ehr_client.records.purpose import PURPOSE_OF_USE_SYSTEM, purpose_of_hash

PURPOSE_HASH_SYSTEM = "urn:ehr:consent-purpose-keccak256"

ACCOUNT_SYSTEM = "https://chainagnostic.org/CAIPs/caip-10"
RECORD_SYSTEM = "urn:ehr-chain:record-id"
TX_SYSTEM = "urn:ehr-chain:tx-hash"
EVENT_SYSTEM = "urn:ehr-chain:event"
SCOPE_SYSTEM = "urn:ehr-chain:scope"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
_NAMESPACE = uuid.UUID("7f1f6f53-3c2a-4a8e-9d4e-2f1f1b7c9a10")

_PATIENT_RECORD = ("110110", "Patient Record")
_SECURITY_ALERT = ("110113", "Security Alert")
_ROLES_CHANGED = ("110136", "Security Roles Changed")
_ATTRIBUTES_CHANGED = ("110137", "User Security Attributes Changed")
_APPLICATION_ACTIVITY = ("110100", "Application Activity")

# name (event or called function) -> (DICOM audit event type, FHIR action C/R/U/D/E)
_TYPES: dict[str, tuple[tuple[str, str], str]] = {
    "AccessRequested": (_PATIENT_RECORD, "R"), "requestAccess": (_PATIENT_RECORD, "R"),
    "requestBatchedAccess": (_PATIENT_RECORD, "R"),
    "RecordAdded": (_PATIENT_RECORD, "C"), "addRecord": (_PATIENT_RECORD, "C"),
    "BatchAnchored": (_PATIENT_RECORD, "C"), "anchorBatch": (_PATIENT_RECORD, "C"),
    "PatientRegistered": (_PATIENT_RECORD, "C"), "registerPatient": (_PATIENT_RECORD, "C"),
    "RecordAmended": (_PATIENT_RECORD, "U"), "amendRecord": (_PATIENT_RECORD, "U"),
    "RecordTombstoned": (_PATIENT_RECORD, "D"), "tombstone": (_PATIENT_RECORD, "D"),
    "tombstoneBatched": (_PATIENT_RECORD, "D"),
    "AccessGranted": (_ATTRIBUTES_CHANGED, "U"), "AccessRevoked": (_ATTRIBUTES_CHANGED, "U"),
    "grant": (_ATTRIBUTES_CHANGED, "U"), "grantBySig": (_ATTRIBUTES_CHANGED, "U"),
    "revoke": (_ATTRIBUTES_CHANGED, "U"), "revokeBySig": (_ATTRIBUTES_CHANGED, "U"),
    "BreakGlassRequested": (_SECURITY_ALERT, "E"), "BreakGlassActivated": (_SECURITY_ALERT, "E"),
    "openBreakGlass": (_SECURITY_ALERT, "E"), "confirmBreakGlass": (_SECURITY_ALERT, "E"),
    "KeyPublished": (_ATTRIBUTES_CHANGED, "C"), "KeyRotated": (_ATTRIBUTES_CHANGED, "U"),
    "KeyRevoked": (_ATTRIBUTES_CHANGED, "D"), "publishKey": (_ATTRIBUTES_CHANGED, "C"),
    "revokeKey": (_ATTRIBUTES_CHANGED, "D"),
}
_CONSORTIUM_TYPE = (_ROLES_CHANGED, "E")


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def account_identifier(chain_id: int, address: str) -> dict[str, str]:
    """A pseudonymous account as a FHIR Identifier (CAIP-10 account id)."""
    return {"system": ACCOUNT_SYSTEM, "value": f"eip155:{chain_id}:{address}"}


def _reference(identifier: dict[str, str], display: str | None = None) -> dict[str, Any]:
    reference: dict[str, Any] = {"identifier": identifier}
    if display:
        reference["display"] = display
    return reference


def resource_id(*parts: object) -> str:
    """A deterministic FHIR id (a UUID) for the resource describing one on-chain fact."""
    return str(uuid.uuid5(_NAMESPACE, "|".join(str(p) for p in parts)))


def audit_event(row: AuditRow, *, chain_id: int, contracts: Mapping[str, str]) -> dict[str, Any]:
    """One AuditEvent for one audit row (an event, or a reverted transaction)."""
    (code, display), action = _TYPES.get(row.name, _CONSORTIUM_TYPE if row.contract == "Consortium"
                                         else (_APPLICATION_ACTIVITY, "E"))
    actor = row.actor or row.sender
    agents: list[dict[str, Any]] = []
    if actor:
        agents.append({"who": _reference(account_identifier(chain_id, actor)), "requestor": True,
                       "role": [{"text": "acting account"}]})
    if row.sender and row.sender != actor:
        agents.append({"who": _reference(account_identifier(chain_id, row.sender)), "requestor": False,
                       "role": [{"text": "transaction sender (relayer)"}]})
    entities: list[dict[str, Any]] = []
    if row.patient:
        entities.append({"what": _reference(account_identifier(chain_id, row.patient)),
                         "type": _coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "1", "Person"),
                         "role": _coding("http://terminology.hl7.org/CodeSystem/object-role", "1", "Patient")})
    for record, label in ((row.record_id, None), (row.related_record, "related record")):
        if record:
            entity: dict[str, Any] = {
                "what": _reference({"system": RECORD_SYSTEM, "value": record}),
                "type": _coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "2", "System Object"),
                "role": _coding("http://terminology.hl7.org/CodeSystem/object-role", "4", "Domain Resource")}
            if label:
                entity["description"] = label
            entities.append(entity)
    if row.subject:
        entities.append({"what": _reference(account_identifier(chain_id, row.subject)),
                         "type": _coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "1", "Person"),
                         "role": _coding("http://terminology.hl7.org/CodeSystem/object-role", "6", "User")})
    details = [{"type": "blockNumber", "valueString": str(row.block_number)}]
    if row.log_index >= 0:
        details.append({"type": "logIndex", "valueString": str(row.log_index)})
    entities.append({"what": _reference({"system": TX_SYSTEM, "value": row.tx_hash}),
                     "type": _coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "2", "System Object"),
                     "description": "blockchain transaction", "detail": details})
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": resource_id(chain_id, row.tx_hash, row.log_index),
        "type": _coding(DCM, code, display),
        "subtype": [_coding(EVENT_SYSTEM, f"{row.contract}.{row.name}")],
        "action": action,
        "recorded": iso(row.timestamp),
        "outcome": "4" if row.failed else "0",
        "agent": agents or [{"requestor": False, "role": [{"text": "unknown"}]}],
        "source": {"site": f"eip155:{chain_id}",
                   "observer": _reference(account_identifier(chain_id, contracts.get(row.contract, "")), row.contract),
                   "type": [_coding("http://terminology.hl7.org/CodeSystem/security-source-type", "4",
                                    "Application Server")]},
        "entity": entities,
    }
    if row.failed:
        resource["outcomeDesc"] = f"transaction reverted: {row.error or 'no reason given'}"
    if row.name in ("BreakGlassRequested", "BreakGlassActivated") or row.args.get("emergency") is True:
        resource["purposeOfEvent"] = [{"coding": [_coding("http://terminology.hl7.org/CodeSystem/v3-ActReason",
                                                          "ETREAT", "Emergency Treatment")]}]
    return resource


def consent(grant: AuditRow, later: Sequence[AuditRow], *, chain_id: int, now: int) -> dict[str, Any]:
    """A Consent for one AccessGranted event, given the grant events of the same pair that follow it
    (a revocation or a replacing grant ends it)."""
    args = grant.args
    patient, grantee = str(grant.patient), str(grant.subject)
    ended_by = next((row for row in later if row.patient == patient and row.subject == grantee
                     and row.position > grant.position), None)
    expires = int(args["expiresAt"])
    end = min(expires, ended_by.timestamp) if ended_by is not None else expires
    status = "active" if ended_by is None and expires > now else "inactive"
    actions = [{"coding": [_coding("http://terminology.hl7.org/CodeSystem/consentaction", "access", "Access")]}]
    if ACCESS.get(int(args["access"])) == "amend":
        actions.append({"coding": [_coding("http://terminology.hl7.org/CodeSystem/consentaction", "correct",
                                           "Access and Correct")]})
    patient_ref = _reference(account_identifier(chain_id, patient))
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": resource_id(chain_id, grant.tx_hash, grant.log_index, "consent"),
        "identifier": [{"system": TX_SYSTEM, "value": grant.tx_hash}],
        "status": status,
        "scope": {"coding": [_coding("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy",
                                     "Privacy Consent")]},
        "category": [{"coding": [_coding("http://loinc.org", "59284-0", "Patient Consent")]}],
        "patient": patient_ref,
        "dateTime": iso(grant.timestamp),
        "performer": [patient_ref],
        "policyRule": {"coding": [_coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "OPTIN", "opt-in")]},
        "verification": [{"verified": True, "verifiedWith": patient_ref, "verificationDate": iso(grant.timestamp)}],
        "provision": {
            "type": "permit",
            "period": {"start": iso(grant.timestamp), "end": iso(max(end, grant.timestamp))},
            "actor": [{"role": {"coding": [_coding("http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                                   "IRCP", "information recipient")]},
                       "reference": _reference(account_identifier(chain_id, grantee))}],
            "action": actions,
            "code": [{"coding": [_coding(SCOPE_SYSTEM, name.lower(), name) for name in describe(int(args["scopes"]))]}],
        },
    }
    purpose = _purpose(args.get("purposeHash"))
    if purpose is not None:
        resource["provision"]["purpose"] = [purpose]
    return resource


def _purpose(digest: object) -> dict[str, Any] | None:
    """The grant's purpose of use as the patient stated it: its HL7 v3 PurposeOfUse coding when the
    evented hash is of a known word, else the hash itself (what the chain vouches for)."""
    if digest is None:
        return None
    known = purpose_of_hash(digest if isinstance(digest, (bytes, str)) else None)
    if known is not None:
        return _coding(PURPOSE_OF_USE_SYSTEM, known.code, known.display)
    value = digest.hex() if isinstance(digest, bytes) else str(digest).removeprefix("0x")
    return {"system": PURPOSE_HASH_SYSTEM, "code": "0x" + value, "display": "purpose not known to this client"}


def _validate(resource: dict[str, Any]) -> None:
    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except ValidationError as exc:
        raise InvalidRecord(f"the {resource['resourceType']} export does not validate as FHIR R4 ({exc.error_count()} "
                            f"problems, first: {exc.errors()[0]['loc']}); this is a bug, please report it") from None


def bundle(resources: Iterable[dict[str, Any]], *, now: int) -> dict[str, Any]:
    """A validated collection Bundle of `resources`."""
    items = list(resources)
    for resource in items:
        _validate(resource)
    document: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": resource_id("bundle", now, *(r["id"] for r in items)),
        "type": "collection",
        "timestamp": iso(now),
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in items],
    }
    _validate(document)
    return document


def export_bundle(
    index: AuditIndex,
    *,
    audit_events: bool = True,
    consents: bool = True,
    now: int | None = None,
    **filters: Any,
) -> dict[str, Any]:
    """AuditEvents for the rows matching `filters` (see `queries.trail`) and Consents for the grants
    among them, as one validated FHIR Bundle. `now` (unix seconds) decides which consents are active."""
    moment = int(time.time()) if now is None else now
    chain_id = index.chain.chain_id
    contracts = {s.name: s.address for s in index.decoder.sources}
    rows = index.trail(**filters)
    resources: list[dict[str, Any]] = []
    if audit_events:
        resources += [audit_event(row, chain_id=chain_id, contracts=contracts) for row in rows]
    if consents:
        grants = [row for row in rows if row.kind == "event" and row.name == "AccessGranted"]
        patients = {str(g.patient) for g in grants}
        history = [row for patient in sorted(patients) for row in index.grants(patient)]
        resources += [consent(g, history, chain_id=chain_id, now=moment) for g in grants]
    return bundle(resources, now=moment)
