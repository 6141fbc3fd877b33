"""Which claim a FHIR resource carries, if any.

Observation: its first coding, valueQuantity (value and unit) and effective date; Immunization:
vaccine code and occurrence date; Patient: birth date; Condition: code and onset date. A resource
without these, or with a partial date ("1990", "1990-05") or a quantity of more than three
decimals, carries no claim: a claim is never rounded into something the record does not say.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from ehr_client.claims.model import Claim, ClaimKind, code_element, encode_date, encode_value, unit_element


def extract_claim(resource: object) -> Claim | None:
    if not isinstance(resource, Mapping):
        return None
    kind = resource.get("resourceType")
    if kind == "Observation":
        quantity = resource.get("valueQuantity")
        date = _day(resource.get("effectiveDateTime") or resource.get("effectiveInstant")
                    or _get(resource, "effectivePeriod", "start"))
        code = _first_code(resource.get("code"))
        if not isinstance(quantity, Mapping) or date is None or code is None:
            return None
        unit = quantity.get("code") or quantity.get("unit")
        value = _decimal(quantity.get("value"))
        if not isinstance(unit, str) or not unit or value is None:
            return None
        try:
            encoded = encode_value(value)
        except ValueError:
            return None
        return Claim(ClaimKind.OBSERVATION, code_element(code), unit_element(unit), encoded, encode_date(date))
    if kind == "Immunization":
        return _coded(ClaimKind.IMMUNIZATION, resource.get("vaccineCode"), resource.get("occurrenceDateTime"))
    if kind == "Condition":
        return _coded(ClaimKind.CONDITION, resource.get("code"), resource.get("onsetDateTime"))
    if kind == "Patient":
        birth = _day(resource.get("birthDate"))
        return None if birth is None else Claim(ClaimKind.PATIENT, 0, 0, encode_value(Decimal(0)), encode_date(birth))
    return None


def _coded(kind: ClaimKind, concept: Any, when: Any) -> Claim | None:
    code, date = _first_code(concept), _day(when)
    if code is None or date is None:
        return None
    return Claim(kind, code_element(code), 0, encode_value(Decimal(0)), encode_date(date))


def _first_code(concept: Any) -> str | None:
    codings = concept.get("coding") if isinstance(concept, Mapping) else None
    for coding in codings if isinstance(codings, list) else []:
        if isinstance(coding, Mapping) and isinstance(coding.get("system"), str) and isinstance(coding.get("code"), str):
            return f"{coding['system']}|{coding['code']}"
    return None


def _day(value: Any) -> datetime.date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return datetime.date.fromisoformat(value[:10])
    except ValueError:
        return None


def _decimal(value: Any) -> Decimal | None:
    """The quantity exactly as the record's JSON text says it: parse records with
    `ehr_client.records.canonical.parse_json` (decimals, not binary floats)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _get(resource: Mapping[str, Any], *path: str) -> Any:
    node: Any = resource
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node
