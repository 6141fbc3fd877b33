"""Record categories as scope bits: the uint256 bitmask that grants and records carry on chain.

The chain never sees what a record contains, only which category it belongs to. A category is one
bit in the low 16 bits of a uint256; a grant's scope is the OR of the categories it covers.

Bit numbers are part of the on-chain format: never renumber a member, only add new ones in the
unused bits (bit 14 is free).

=====  ==============  ========================================================================
bit    name            what falls in it
=====  ==============  ========================================================================
0      DEMOGRAPHICS    Patient, RelatedPerson, Person. A category only: identifiers never go
                       on chain, not even hashed.
1      LAB             Observation category ``laboratory``; DiagnosticReport lab sections
                       (v2-0074 LAB, CH, HM, MB, SP, ...); Specimen
2      VITALS          Observation category ``vital-signs``
3      CONDITIONS      Condition, AllergyIntolerance, FamilyMemberHistory, ClinicalImpression
4      MEDICATIONS     Medication, MedicationRequest, MedicationStatement,
                       MedicationAdministration, MedicationDispense
5      PROCEDURES      Procedure, ServiceRequest; Observation category ``procedure``
6      ENCOUNTERS      Encounter, EpisodeOfCare, Appointment
7      IMAGING         ImagingStudy, Media; Observation category ``imaging``; DiagnosticReport
                       radiology sections (v2-0074 RAD, CT, MR, US, ...); DICOM files; images
8      GENOMICS        MolecularSequence; DiagnosticReport v2-0074 GE/CG; genomic files
9      MENTAL_HEALTH   Anything labelled sensitive for mental health or substance use (see
                       :data:`MENTAL_HEALTH_SECURITY_CODES`), mental-health note types
                       (:data:`MENTAL_HEALTH_NOTE_TYPES`), Conditions coded ICD-10 chapter V (F*)
10     DOCUMENTS       DocumentReference, Binary, Composition; PDFs and other documents
11     IMMUNIZATIONS   Immunization, ImmunizationRecommendation, ImmunizationEvaluation
12     CARE_PLANS      CarePlan, CareTeam, Goal, NutritionOrder
13     SOCIAL_HISTORY  Observation category ``social-history``
15     OTHER           every other resource type and unrecognised categories
=====  ==============  ========================================================================

Rules (in this order):

1. Sensitivity overrides category. A resource whose ``meta.security`` (or, for DocumentReference,
   ``securityLabel``) carries one of :data:`MENTAL_HEALTH_SECURITY_CODES`, a DocumentReference whose
   ``type`` or ``category`` is one of :data:`MENTAL_HEALTH_NOTE_TYPES`, or a Condition coded in
   ICD-10 chapter F gets ``MENTAL_HEALTH`` *only*, never ``MENTAL_HEALTH | CONDITIONS``: a grant
   for "conditions" must not open a psychiatric diagnosis.
2. Observation and DiagnosticReport take the union of the bits of their recognised category codes;
   no recognised category gives ``OTHER``.
3. A Bundle takes the union of its entries' scopes (``OTHER`` when empty).
4. Everything else is looked up by ``resourceType`` in :data:`RESOURCE_SCOPES`, default ``OTHER``.

A record whose scope has several bits (rules 2 and 3) is only safe if the consent check requires
*every* bit of the record's scope to be granted.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ehr_client.errors import InvalidRecord

__all__ = [
    "ALL_SCOPES",
    "CATEGORY_SCOPES",
    "MENTAL_HEALTH_NOTE_TYPES",
    "MENTAL_HEALTH_SECURITY_CODES",
    "RESOURCE_SCOPES",
    "Scope",
    "describe",
    "parse_scopes",
    "scope_for_category",
    "scope_for_resource",
]


class Scope(enum.IntFlag):
    """One bit per record category; values are stable on-chain constants."""

    DEMOGRAPHICS = 1 << 0
    LAB = 1 << 1
    VITALS = 1 << 2
    CONDITIONS = 1 << 3
    MEDICATIONS = 1 << 4
    PROCEDURES = 1 << 5
    ENCOUNTERS = 1 << 6
    IMAGING = 1 << 7
    GENOMICS = 1 << 8
    MENTAL_HEALTH = 1 << 9
    DOCUMENTS = 1 << 10
    IMMUNIZATIONS = 1 << 11
    CARE_PLANS = 1 << 12
    SOCIAL_HISTORY = 1 << 13
    OTHER = 1 << 15


ALL_SCOPES: Scope = Scope(sum(member.value for member in Scope))
"""Every defined category; what ``parse_scopes("all")`` returns."""

RESOURCE_SCOPES: Mapping[str, Scope] = {
    "Patient": Scope.DEMOGRAPHICS,
    "RelatedPerson": Scope.DEMOGRAPHICS,
    "Person": Scope.DEMOGRAPHICS,
    "Specimen": Scope.LAB,
    "Condition": Scope.CONDITIONS,
    "AllergyIntolerance": Scope.CONDITIONS,
    "FamilyMemberHistory": Scope.CONDITIONS,
    "ClinicalImpression": Scope.CONDITIONS,
    "Medication": Scope.MEDICATIONS,
    "MedicationRequest": Scope.MEDICATIONS,
    "MedicationStatement": Scope.MEDICATIONS,
    "MedicationAdministration": Scope.MEDICATIONS,
    "MedicationDispense": Scope.MEDICATIONS,
    "Procedure": Scope.PROCEDURES,
    "ServiceRequest": Scope.PROCEDURES,
    "Encounter": Scope.ENCOUNTERS,
    "EpisodeOfCare": Scope.ENCOUNTERS,
    "Appointment": Scope.ENCOUNTERS,
    "ImagingStudy": Scope.IMAGING,
    "Media": Scope.IMAGING,
    "MolecularSequence": Scope.GENOMICS,
    "DocumentReference": Scope.DOCUMENTS,
    "Binary": Scope.DOCUMENTS,
    "Composition": Scope.DOCUMENTS,
    "Immunization": Scope.IMMUNIZATIONS,
    "ImmunizationRecommendation": Scope.IMMUNIZATIONS,
    "ImmunizationEvaluation": Scope.IMMUNIZATIONS,
    "CarePlan": Scope.CARE_PLANS,
    "CareTeam": Scope.CARE_PLANS,
    "Goal": Scope.CARE_PLANS,
    "NutritionOrder": Scope.CARE_PLANS,
}
"""Scope by resourceType for the types whose category does not depend on their content."""

_OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
_V3_ACT_CODE = frozenset({"http://terminology.hl7.org/CodeSystem/v3-ActCode", "http://hl7.org/fhir/v3/ActCode", ""})
_LOINC = "http://loinc.org"
_ICD10_SYSTEMS = frozenset({"http://hl7.org/fhir/sid/icd-10", "http://hl7.org/fhir/sid/icd-10-cm"})

_CATEGORY_CODES: Mapping[tuple[str, str], Scope] = {
    (_OBSERVATION_CATEGORY, "laboratory"): Scope.LAB,
    (_OBSERVATION_CATEGORY, "vital-signs"): Scope.VITALS,
    (_OBSERVATION_CATEGORY, "imaging"): Scope.IMAGING,
    (_OBSERVATION_CATEGORY, "social-history"): Scope.SOCIAL_HISTORY,
    (_OBSERVATION_CATEGORY, "procedure"): Scope.PROCEDURES,
    **{(_V2_0074, code): Scope.LAB for code in ("LAB", "BLB", "CH", "HM", "IMM", "MB", "MCB", "MYC", "PAT", "SP", "SR", "TX", "VR")},
    **{(_V2_0074, code): Scope.IMAGING for code in ("RAD", "CT", "MR", "NMR", "NMS", "RX", "US", "VUS", "XRC", "CUS", "OUS")},
    **{(_V2_0074, code): Scope.GENOMICS for code in ("GE", "CG")},
    (_LOINC, "LP29684-5"): Scope.IMAGING,  # Radiology
    (_LOINC, "LP7839-6"): Scope.LAB,  # Pathology
}
"""(system, code) of Observation.category / DiagnosticReport.category codings that pick a scope.
A coding without a system is matched on its code alone."""

MENTAL_HEALTH_SECURITY_CODES: frozenset[str] = frozenset({"PSY", "PSYTHPN", "BH", "ETH", "ETHUD", "SUD"})
"""HL7 v3-ActCode information-sensitivity codes (in ``meta.security`` or
``DocumentReference.securityLabel``) that put a resource in MENTAL_HEALTH: psychiatry, psychotherapy
note, behavioural health, substance use (ETH, ETHUD, SUD)."""

MENTAL_HEALTH_NOTE_TYPES: frozenset[str] = frozenset(
    {
        "34785-6",  # Mental health Consult note
        "34904-3",  # Mental health Progress note
        "78263-1",  # Mental health Discharge summary note
        "78306-8",  # Mental health History and physical note
        "78472-8",  # Mental health Procedure note
        "84198-1",  # Mental health Emergency department Note
        "84202-1",  # Mental health Hospital Note
    }
)
"""LOINC document types (DocumentReference.type or .category) that are mental-health notes: the
HL7 US Behavioral Health Profiles value set plus the ED and hospital mental-health notes."""

CATEGORY_SCOPES: Mapping[str, Scope] = {
    "pdf": Scope.DOCUMENTS,
    "document": Scope.DOCUMENTS,
    "dicom": Scope.IMAGING,
    "image": Scope.IMAGING,
    "genomic": Scope.GENOMICS,
}
"""Scope of an opaque (non-FHIR) file by its declared category."""


def scope_for_category(name: str) -> Scope:
    """Return the scope of an opaque file of category `name` ("pdf", "dicom", "genomic", ...).

    Raises:
        InvalidRecord: `name` is not one of :data:`CATEGORY_SCOPES`; the message lists them.
    """
    scope = CATEGORY_SCOPES.get(name.strip().lower())
    if scope is None:
        raise InvalidRecord(f"unknown file category {name!r}: use one of {', '.join(sorted(CATEGORY_SCOPES))}")
    return scope


def scope_for_resource(resource: Mapping[str, Any]) -> Scope:
    """Return the scope of a FHIR resource (a JSON object) by the rules in the module docstring.

    Raises:
        InvalidRecord: `resource` has no string ``resourceType``.
    """
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        raise InvalidRecord("the FHIR resource has no resourceType: add one, e.g. \"Observation\"")
    if _is_mental_health(resource_type, resource):
        return Scope.MENTAL_HEALTH
    if resource_type in ("Observation", "DiagnosticReport"):
        return _union(_category_scope(*coding) for coding in _codings(resource.get("category"))) or Scope.OTHER
    if resource_type == "Bundle":
        entries = resource.get("entry")
        inner = (
            scope_for_resource(entry["resource"])
            for entry in (entries if isinstance(entries, list) else [])
            if isinstance(entry, Mapping) and isinstance(entry.get("resource"), Mapping)
        )
        return _union(inner) or Scope.OTHER
    return RESOURCE_SCOPES.get(resource_type, Scope.OTHER)


def parse_scopes(text: str) -> Scope:
    """Parse a comma-separated list of scope names ("lab,conditions", "mental-health", "all").

    Case, surrounding spaces, and ``-`` versus ``_`` do not matter.

    Raises:
        InvalidRecord: empty input or an unknown name; the message lists the accepted names.
    """
    result = Scope(0)
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise InvalidRecord(f"no scope given: use one or more of {', '.join(_scope_names())}, or all")
    for name in names:
        key = name.upper().replace("-", "_")
        if key == "ALL":
            result |= ALL_SCOPES
        elif key in Scope.__members__:
            result |= Scope[key]
        else:
            raise InvalidRecord(f"unknown scope {name!r}: use one or more of {', '.join(_scope_names())}, or all")
    return result


def describe(scope_bits: int) -> list[str]:
    """Name the categories in a scope bitmask, lowest bit first ("lab", "mental_health", ...).

    Bits that no category uses are shown as ``bit<N>`` rather than dropped, so a value read from
    chain is never silently narrowed.
    """
    if scope_bits < 0:
        raise InvalidRecord("a scope bitmask cannot be negative")
    names: list[str] = []
    for bit in range(scope_bits.bit_length()):
        if scope_bits >> bit & 1:
            name = Scope(1 << bit).name
            names.append(name.lower() if name else f"bit{bit}")
    return names


def _scope_names() -> list[str]:
    return [name.lower() for name in Scope.__members__]


def _union(scopes: Iterable[Scope]) -> Scope:
    result = Scope(0)
    for scope in scopes:
        result |= scope
    return result


def _codings(value: object) -> Iterator[tuple[str, str]]:
    """Yield (system, code) from a CodeableConcept, a Coding, or a list of either.

    A coding without a system yields ``""`` as its system.
    """
    for item in value if isinstance(value, list) else [value]:
        if not isinstance(item, Mapping):
            continue
        codings = item.get("coding") if "coding" in item else [item]
        for coding in codings if isinstance(codings, list) else []:
            if isinstance(coding, Mapping) and isinstance(coding.get("code"), str):
                system = coding.get("system")
                yield (system if isinstance(system, str) else ""), coding["code"]


def _category_scope(system: str, code: str) -> Scope:
    if system:
        return _CATEGORY_CODES.get((system, code), Scope(0))
    return _union(scope for (_, known), scope in _CATEGORY_CODES.items() if known == code)


def _is_mental_health(resource_type: str, resource: Mapping[str, Any]) -> bool:
    meta = resource.get("meta")
    labels = list(_codings(meta.get("security"))) if isinstance(meta, Mapping) else []
    if resource_type == "DocumentReference":
        labels += _codings(resource.get("securityLabel"))
    if any(system in _V3_ACT_CODE and code in MENTAL_HEALTH_SECURITY_CODES for system, code in labels):
        return True
    if resource_type == "DocumentReference":
        doc_codes = [*_codings(resource.get("type")), *_codings(resource.get("category"))]
        return any(system in (_LOINC, "") and code in MENTAL_HEALTH_NOTE_TYPES for system, code in doc_codes)
    if resource_type == "Condition":
        return any(system in _ICD10_SYSTEMS and code[:1].upper() == "F" for system, code in _codings(resource.get("code")))
    return False
