"""Validate FHIR R4 (4.0.1) resources and turn them into canonical bytes with a scope.

What is checked, all from the R4 4.0.1 definitions (``fhir_r4/``; the README says which source
and why): the resource type is one of R4's 146; every element is known for its type (R5-only
elements, R4B-only types and the DSTU2 ``fhir_comments`` are refused); cardinality; choice
elements (one value each); JSON types and the spec's regex of each primitive; no empty object,
array or string and no ``null``; ele-1 and ext-1 (an extension needs a url and either a value or
extensions); contained resources and Bundle entries as resources; required value-set bindings on
code, Coding and CodeableConcept where the value set can be enumerated from the definitions (not:
ucum-units, mimetypes, currencies, one LOINC answer list); and, unless switched off, the
FHIRPath invariants that need no terminology server (``fhir_r4.invariants`` lists the skipped).

Switch: ``invariants=False`` per call, or ``EHR_FHIR_INVARIANTS=0`` for a deployment.

Canonical bytes are made from the parsed input (decimals kept exact, see ``canonical.py``), so
validation is only a gate and never changes a resource.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeAlias

from ehr_client.errors import InvalidRecord
from ehr_client.records.canonical import JsonValue, canonicalize, parse_json
from ehr_client.records.fhir_r4.invariants import invariant_problems
from ehr_client.records.fhir_r4.structure import InvariantTarget, Problem, resource_problems
from ehr_client.records.scopes import Scope, scope_for_resource

__all__ = [
    "BundleEntry",
    "FHIR_VERSION",
    "INVARIANTS_ENV",
    "FhirSource",
    "Problem",
    "ValidatedRecord",
    "fhir_problems",
    "validate_bundle_entries",
    "validate_fhir",
]

FHIR_VERSION: Final[str] = "4.0.1"
"""The FHIR release records are validated against (R4)."""

INVARIANTS_ENV: Final = "EHR_FHIR_INVARIANTS"
"""Set to 0 (or off/false/no) to skip the FHIRPath invariants by default in this process."""

FhirSource: TypeAlias = Mapping[str, Any] | str | bytes | os.PathLike[str]
"""A resource as a JSON object, JSON text (str or bytes), or the path of a JSON file."""

_MAX_PROBLEMS = 5


@dataclass(frozen=True)
class ValidatedRecord:
    """A FHIR resource that passed validation. `canonical` is kept out of repr (health data)."""

    resource_type: str
    scope: Scope
    canonical: bytes = field(repr=False)


def invariants_by_default() -> bool:
    """Whether the FHIRPath invariants run when a call does not say (see :data:`INVARIANTS_ENV`)."""
    return os.environ.get(INVARIANTS_ENV, "1").strip().lower() not in ("0", "off", "false", "no")


def fhir_problems(source: FhirSource, *, invariants: bool | None = None) -> list[Problem]:
    """Every problem of one resource as (path, rule); empty when it is valid FHIR R4.

    Raises:
        InvalidRecord: only when the source cannot be read or is not JSON.
    """
    return _problems(_load(source), invariants)


def validate_fhir(source: FhirSource, *, invariants: bool | None = None) -> ValidatedRecord:
    """Validate one FHIR R4 resource and return its type, scope and canonical bytes.

    `source` is a dict, JSON text (``str`` or ``bytes``), or a ``pathlib.Path`` (any
    ``os.PathLike``) of a JSON file; a plain ``str`` is always JSON text, never a path.

    Raises:
        InvalidRecord: unreadable file, not JSON, or not valid FHIR R4; the message names each
            element (``Observation.code.coding[0].system``) and the rule it breaks.
    """
    data, canonical = _load_canonical(source)
    targets: list[InvariantTarget] | None = [] if _invariants_on(invariants) else None
    problems = _structure_problems(data, targets)
    if problems or not isinstance(data, dict):
        raise InvalidRecord(_summary(data, problems))
    # Scope and bytes are taken before the invariants run: fhirpathpy annotates what it evaluates,
    # and `data` is our own parse, so it evaluates that rather than a copy. Text that cannot be
    # encoded (a lone surrogate) is reported after the invariants, as it always was.
    scope = scope_for_resource(data)
    unencodable: InvalidRecord | None = None
    if canonical is None:
        try:
            canonical = canonicalize(data)
        except InvalidRecord as exc:
            unencodable = exc
    problems = invariant_problems(targets) if targets else []
    if problems:
        raise InvalidRecord(_summary(data, problems))
    if unencodable is not None:
        raise unencodable
    assert canonical is not None
    return ValidatedRecord(resource_type=str(data["resourceType"]), scope=scope, canonical=canonical)


@dataclass(frozen=True)
class BundleEntry:
    """One entry of a Bundle that carries a resource: its record if valid, else its problems."""

    index: int
    full_url: str | None
    record: ValidatedRecord | None
    problems: tuple[Problem, ...]


_ENTRY_PATH: Final = re.compile(r"Bundle\.entry\[(\d+)\]")


def validate_bundle_entries(source: FhirSource, *, invariants: bool | None = None) -> list[BundleEntry]:
    """Validate a Bundle and judge each entry on its own, for importing one record per entry.

    Returns the entries that carry a resource, in order. An entry with problems anywhere under
    ``Bundle.entry[i]`` gets them and no record; the others get the record their resource would
    get if validated alone. Problems of the Bundle itself (its type, its invariants such as
    bdl-7's unique fullUrls) make the whole Bundle invalid.

    Raises:
        InvalidRecord: not JSON, not a Bundle, or the Bundle outside its entries is invalid.
    """
    data: Any = _load(source)
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise InvalidRecord("expected a FHIR Bundle (resourceType \"Bundle\"): validate other resources with validate_fhir")
    by_entry: dict[int, list[Problem]] = {}
    bundle_level: list[Problem] = []
    for problem in _problems(data, invariants):
        match = _ENTRY_PATH.match(problem.path)
        if match:
            by_entry.setdefault(int(match.group(1)), []).append(problem)
        else:
            bundle_level.append(problem)
    if bundle_level:
        raise InvalidRecord(_summary(data, bundle_level))
    entries = []
    for index, entry in enumerate(data.get("entry", [])):
        resource = entry.get("resource")
        if resource is None:
            continue
        problems = tuple(by_entry.get(index, ()))
        record = None if problems else ValidatedRecord(
            str(resource["resourceType"]), scope_for_resource(resource), canonicalize(resource))
        full_url = entry.get("fullUrl")
        entries.append(BundleEntry(index, full_url if isinstance(full_url, str) else None, record, problems))
    return entries


def _invariants_on(invariants: bool | None) -> bool:
    return invariants_by_default() if invariants is None else invariants


def _structure_problems(data: JsonValue, targets: list[InvariantTarget] | None) -> list[Problem]:
    if not isinstance(data, dict):
        return [Problem("$", "a FHIR resource must be a JSON object with a resourceType")]
    resource_type = data.get("resourceType")
    root = resource_type if isinstance(resource_type, str) and resource_type.isidentifier() else "$"
    return resource_problems(data, root, invariant_targets=targets)


def _problems(data: JsonValue, invariants: bool | None) -> list[Problem]:
    if not _invariants_on(invariants):
        return _structure_problems(data, None)
    # fhirpathpy annotates what it evaluates: walk and evaluate a copy (callers keep using `data`).
    targets: list[InvariantTarget] = []
    problems = _structure_problems(copy.deepcopy(data), targets)
    return problems or invariant_problems(targets)


def _load(source: FhirSource) -> JsonValue:
    return _load_canonical(source)[0]


def _load_canonical(source: FhirSource) -> tuple[JsonValue, bytes | None]:
    """The parsed resource, and for a dict its canonical bytes (made on the way: a dict goes through
    our own encoder and parser, so it is treated exactly like its JSON text, and
    ``canonicalize(parse_json(canonicalize(x))) == canonicalize(x)``)."""
    if isinstance(source, os.PathLike):
        path = Path(source)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise InvalidRecord(f"cannot read FHIR file {path.name!r}: {exc.strerror or type(exc).__name__}") from None
        return parse_json(raw), None
    if isinstance(source, (str, bytes)):
        return parse_json(source), None
    if isinstance(source, Mapping):
        canonical = canonicalize(source)
        return parse_json(canonical), canonical
    raise InvalidRecord(f"cannot read a FHIR resource from a {type(source).__name__}: pass a dict, JSON text or a Path")


def _summary(data: JsonValue, problems: list[Problem]) -> str:
    resource_type = data.get("resourceType") if isinstance(data, dict) else None
    what = resource_type[:64] if isinstance(resource_type, str) and resource_type else "the record"
    shown = "; ".join(str(problem) for problem in problems[:_MAX_PROBLEMS])
    more = len(problems) - _MAX_PROBLEMS
    suffix = f"; and {more} more problem{'s' if more > 1 else ''}" if more > 0 else ""
    return f"{what} is not valid FHIR R4 ({FHIR_VERSION}): {shown}{suffix}. Fix these and try again"
