"""Validate FHIR R4 resources and turn them into canonical bytes with a scope.

Which models: fhir.resources 8.x ships FHIR R5 at its top level (``fhir.resources.__fhir_version__``
is 5.0.0) and only ``R4B`` (4.3.0) and ``STU3`` as subpackages; there is no plain R4 package.
R4B is R4 with a small set of changes (mostly medicinal-product definition and evidence resources,
plus new SubscriptionTopic/Status); the clinical resources a patient record holds (Patient,
Observation, Condition, Medication*, Procedure, Encounter, DiagnosticReport, DocumentReference,
Immunization, ...) are structurally the same, so R4 JSON validates against R4B. We therefore use
``fhir.resources.R4B`` and never the R5 top level, whose Observation, MedicationStatement,
DocumentReference and others differ from R4. The resource types R4B added are refused (they are
not R4); R4 types that R4B dropped (MedicinalProduct*, EffectEvidenceSynthesis, ...) are refused
as unknown. Neither group is patient data.

Canonical bytes are made from the parsed *input*, not from fhir.resources' re-serialisation:
pydantic writes decimals as floats (``1.00`` comes back as ``1.0``), which would change a
resource's meaning and its hash. Validation is only a gate.

What is checked beyond the models: the FHIR JSON rules that the models let through (an empty
object, array or string, or a ``null`` member, is not valid FHIR JSON and would give the same
resource two encodings), and that every nested ``resourceType`` (contained resources, Bundle
entries) names a FHIR resource. Not checked: terminology bindings (a ``status`` of "bogus" passes),
invariants (FHIRPath constraints) and profiles.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeAlias

from fhir.resources.R4B import __fhir_version__ as _R4B_VERSION
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from ehr_client.errors import InvalidRecord
from ehr_client.records.canonical import JsonValue, canonicalize, parse_json
from ehr_client.records.scopes import Scope, scope_for_resource

__all__ = ["FHIR_VERSION", "FhirSource", "ValidatedRecord", "validate_fhir"]

FHIR_VERSION: Final[str] = _R4B_VERSION
"""The FHIR version of the models records are validated against ("4.3.0", R4B)."""

FhirSource: TypeAlias = Mapping[str, Any] | str | bytes | os.PathLike[str]
"""A resource as a JSON object, JSON text (str or bytes), or the path of a JSON file."""

_MAX_PROBLEMS = 5


@dataclass(frozen=True)
class ValidatedRecord:
    """A FHIR resource that passed validation. `canonical` is kept out of repr (health data)."""

    resource_type: str
    scope: Scope
    canonical: bytes = field(repr=False)


def validate_fhir(source: FhirSource) -> ValidatedRecord:
    """Validate one FHIR R4 resource and return its type, scope and canonical bytes.

    `source` is a dict, JSON text (``str`` or ``bytes``), or a ``pathlib.Path`` (any
    ``os.PathLike``) of a JSON file; a plain ``str`` is always JSON text, never a path.

    Raises:
        InvalidRecord: unreadable file, not JSON, unknown resourceType, or a FHIR error; the
            message names the element (``Observation.code.coding[0].system``) and what to fix.
    """
    data = _load(source)
    if not isinstance(data, dict):
        raise InvalidRecord("a FHIR resource must be a JSON object with a resourceType")
    resource_type = data.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        raise InvalidRecord("the JSON object has no resourceType: add one, e.g. \"resourceType\": \"Observation\"")
    model = _resource_model(resource_type, "resourceType")
    problems = list(_json_rule_problems(data, resource_type))
    if not problems:
        try:
            model.model_validate(data)
        except ValidationError as exc:
            problems = [_describe_error(resource_type, error) for error in exc.errors()]
        except (KeyError, TypeError, ValueError, RecursionError) as exc:
            problems = [f"{resource_type}: the validator failed ({type(exc).__name__}); check the resource's structure"]
    if problems:
        raise InvalidRecord(_summary(resource_type, problems))
    return ValidatedRecord(resource_type=resource_type, scope=scope_for_resource(data), canonical=canonicalize(data))


def _load(source: FhirSource) -> JsonValue:
    if isinstance(source, os.PathLike):
        path = Path(source)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise InvalidRecord(f"cannot read FHIR file {path.name!r}: {exc.strerror or type(exc).__name__}") from None
        return parse_json(raw)
    if isinstance(source, (str, bytes)):
        return parse_json(source)
    if isinstance(source, Mapping):
        # Through our own encoder and parser, so a dict is treated exactly like its JSON text.
        return parse_json(canonicalize(source))
    raise InvalidRecord(f"cannot read a FHIR resource from a {type(source).__name__}: pass a dict, JSON text or a Path")


_ABSTRACT_TYPES: Final = frozenset({"Resource", "DomainResource"})
_R4B_ONLY_TYPES: Final = frozenset(
    {
        "AdministrableProductDefinition", "Citation", "ClinicalUseDefinition", "EvidenceReport", "Ingredient",
        "ManufacturedItemDefinition", "MedicinalProductDefinition", "NutritionProduct",
        "PackagedProductDefinition", "RegulatedAuthorization", "SubscriptionStatus", "SubscriptionTopic",
    }
)
"""Resource types R4B added; R4 has no such resources, so an R4 record cannot hold them."""


def _resource_model(resource_type: str, where: str) -> type[Resource]:
    unknown = InvalidRecord(
        f"{where}: {resource_type[:64]!r} is not a FHIR R4 resource type: check the spelling "
        "and capitalisation (e.g. Observation, Condition, MedicationRequest)"
    )
    if resource_type in _ABSTRACT_TYPES or resource_type in _R4B_ONLY_TYPES:
        raise unknown
    try:
        model = get_fhir_model_class(resource_type)
    except ValueError:
        raise unknown from None
    if not issubclass(model, Resource):  # a datatype such as Quantity
        raise unknown
    return model


def _json_rule_problems(value: JsonValue, path: str) -> Iterator[str]:
    """FHIR JSON rules (https://hl7.org/fhir/R4/json.html) the models do not enforce."""
    if isinstance(value, dict):
        if not value:
            yield f"{path}: empty object; remove the element instead"
        nested_type = value.get("resourceType")
        if isinstance(nested_type, str) and "." in path:
            try:
                _resource_model(nested_type, path)
            except InvalidRecord as exc:
                yield str(exc)
                return
        for key, item in value.items():
            if item is None:
                yield f"{path}.{key}: null is not allowed in FHIR JSON; remove the element"
            else:
                yield from _json_rule_problems(item, f"{path}.{key}")
    elif isinstance(value, list):
        if not value:
            yield f"{path}: empty array; remove the element instead"
        for index, item in enumerate(value):
            if item is not None:  # nulls in arrays are positional placeholders for _element arrays
                yield from _json_rule_problems(item, f"{path}[{index}]")
    elif isinstance(value, str) and not value:
        yield f"{path}: empty string; remove the element instead"


_HINTS: Final[Mapping[str, str]] = {
    "missing": "is required: add it",
    "model_field_validation.missing": "is required: add it",
    "extra_forbidden": "is not an element of this FHIR R4 type: remove it or fix the spelling",
    "string_type": "must be a JSON string",
    "list_type": "must be a JSON array without null entries",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
}

_DATETIME_HINT = "must be a FHIR dateTime: YYYY, YYYY-MM, YYYY-MM-DD, or YYYY-MM-DDThh:mm:ss with a timezone (Z or +hh:mm)"
_FORMAT_HINTS: Final[Mapping[str, str]] = {
    "Date value": "must be a FHIR date: YYYY, YYYY-MM or YYYY-MM-DD",
    "DateTime": _DATETIME_HINT,
    "Instant": "must be a FHIR instant: YYYY-MM-DDThh:mm:ss[.sss] with a timezone (Z or +hh:mm)",
    "Time value": "must be a FHIR time: hh:mm:ss",
    "Decimal value": "must be a JSON number",
}
_CHOICE_MANY = "Any of one field value is expected"
_CHOICE_NONE = "Expect any of field value"


def _describe_error(resource_type: str, error: ErrorDetails) -> str:
    """One problem as "<FHIR path>: <what to fix>", never echoing the offending value."""
    path = resource_type + "".join(_path_part(part) for part in error["loc"] if part != "root")
    hint = _HINTS.get(error["type"])
    if hint is None:
        message = error["msg"].removeprefix("Value error, ").rstrip(".")
        hint = next((text for prefix, text in _FORMAT_HINTS.items() if message.startswith(prefix)), None)
        choices = message[message.find("[") : message.find("]") + 1]
        if hint is None and message.startswith(_CHOICE_MANY):
            hint = f"may have only one of the choices {choices}: keep one"
        if hint is None and message.startswith(_CHOICE_NONE):
            hint = f"needs one of the choices {choices}: add one"
        if hint is None:
            hint = f"{message[:200]}: fix the value"
    return f"{path} {hint}" if hint.startswith(("is ", "must ", "may ", "needs ")) else f"{path}: {hint}"


def _path_part(part: str | int) -> str:
    if isinstance(part, int):
        return f"[{part}]"
    if part == "resource_type":
        return ".resourceType"
    if part.endswith("__ext"):
        return "._" + part.removesuffix("__ext")
    return "." + part


def _summary(resource_type: str, problems: list[str]) -> str:
    shown = "; ".join(problems[:_MAX_PROBLEMS])
    more = len(problems) - _MAX_PROBLEMS
    suffix = f"; and {more} more problem{'s' if more > 1 else ''}" if more > 0 else ""
    return f"{resource_type} is not valid FHIR R4 (checked against {FHIR_VERSION}): {shown}{suffix}"
