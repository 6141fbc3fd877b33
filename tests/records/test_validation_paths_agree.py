"""`validate_fhir` takes shortcuts the problem listing does not: canonical bytes made once, the
invariants evaluated on its own parse instead of a copy, each type's invariants compiled on first
use. It must accept and reject exactly what `fhir_problems` (the copy-and-evaluate path) does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import fhirpathpy
import pytest
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

from ehr_client.errors import InvalidRecord
from ehr_client.records import canonicalize, validate_fhir
from ehr_client.records.fhir import fhir_problems
from ehr_client.records.fhir_r4.definitions import definitions
from ehr_client.records.fhir_r4.invariants import skipped
from ehr_client.records.fhir_r4.native import HOLDS_WITHOUT, holds_without

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "fhir-r4-examples"
ROOT = Path(__file__).resolve().parents[2]


def _observation(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]}, **extra}


BREAKING_INVARIANTS = {
    "per-1 (period ends before it starts)": _observation(
        effectivePeriod={"start": "2026-01-02T10:00:00Z", "end": "2026-01-01T10:00:00Z"}),
    "obs-6 (value and dataAbsentReason)": _observation(
        valueString="4.2", dataAbsentReason={"text": "not measured"}),
    "obs-7 (component repeats the code with a value)": _observation(
        valueString="4.2", component=[{"code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
                                       "valueString": "4.2"}]),
    "dom-2 (a contained resource contains one)": _observation(
        subject={"reference": "#p"},
        contained=[{"resourceType": "Patient", "id": "p", "contained": [{"resourceType": "Patient", "id": "q"}]}]),
    "dom-4 (a contained resource has a version)": _observation(
        subject={"reference": "#p"}, contained=[{"resourceType": "Patient", "id": "p", "meta": {"versionId": "2"}}]),
    "dom-5 (a contained resource has security labels)": _observation(
        subject={"reference": "#p"}, contained=[{"resourceType": "Patient", "id": "p", "meta": {"security": [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]}}]),
    "qty-3 (a quantity code without its system)": _observation(valueQuantity={"value": 4.2, "code": "mmol/L"}),
    "ref-1 (a local reference to nothing contained)": _observation(subject={"reference": "#nobody"}),
    "rng-2 (range low above high)": _observation(
        valueRange={"low": {"value": 5, "unit": "mmol/L"}, "high": {"value": 4, "unit": "mmol/L"}}),
}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json"))[::10], ids=lambda p: p.name)
def test_an_official_example_gets_the_same_bytes_with_and_without_invariants(path: Path) -> None:
    assert validate_fhir(path).canonical == validate_fhir(path, invariants=False).canonical


@pytest.mark.parametrize("name", BREAKING_INVARIANTS)
def test_a_resource_breaking_an_invariant_is_refused_as_the_problem_listing_says(name: str) -> None:
    resource = BREAKING_INVARIANTS[name]
    listed = [str(problem) for problem in fhir_problems(resource)]
    assert listed, "the case must break an invariant"

    messages = set()
    for source in (resource, json.dumps(resource), json.dumps(resource).encode()):
        with pytest.raises(InvalidRecord) as refused:
            validate_fhir(source)
        messages.add(str(refused.value))

    assert len(messages) == 1
    message = messages.pop()
    assert all(problem in message for problem in listed)
    assert validate_fhir(resource, invariants=False).canonical == canonicalize(resource)


def test_a_lone_surrogate_is_reported_after_the_invariants_as_before() -> None:
    text = json.dumps(_observation(valueString="\ud800", dataAbsentReason={"text": "x"}))

    with pytest.raises(InvalidRecord, match="obs-6"):
        validate_fhir(text)
    with pytest.raises(InvalidRecord, match="surrogate"):
        validate_fhir(text, invariants=False)


def test_invariants_compiled_type_by_type_list_the_same_skipped_ones_as_a_fresh_process() -> None:
    validate_fhir(_observation(valueString="4.2"))
    fresh = subprocess.run(
        [sys.executable, "-c", "from ehr_client.records.fhir_r4.invariants import skipped; "
                               "print(repr([tuple(s) for s in skipped()]))"],
        cwd=ROOT, capture_output=True, text=True, check=True)

    assert fresh.stdout.strip() == repr([tuple(s) for s in skipped()])


def test_every_invariant_skipped_when_its_elements_are_absent_is_one_the_definitions_hold() -> None:
    in_table = {key for paths in definitions().constraints.values() for items in paths.values()
                for key, expression, _ in items if holds_without(key, expression) is not None}

    assert in_table == set(HOLDS_WITHOUT)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_an_invariant_skipped_for_absent_elements_holds_on_the_example_without_them(path: Path) -> None:
    """The engine itself, on each official example stripped of the elements: the shortcut's verdict."""
    resource = json.loads(path.read_text())
    type_name = resource["resourceType"]
    for key, expression, _ in definitions().constraints.get(type_name, {}).get("", []):
        elements = holds_without(key, expression)
        if elements is None:
            continue
        stripped = {name: value for name, value in resource.items()
                    if name not in elements and name.lstrip("_") not in elements}
        verdict = fhirpathpy.compile(expression, models["r4"], {})(
            ResourceNode.create_node(stripped, type_name), {"resource": stripped, "rootResource": stripped})

        assert verdict != [False], f"{key} fails on {path.name} without {sorted(elements)}"


DATATYPE_NODES = {
    "Quantity": [{"value": 4.2, "unit": "mmol/L"}, {"value": 1}, {"unit": "mg", "system": "http://unitsofmeasure.org"}],
    "Reference": [{"display": "Dr. A"}, {"identifier": {"value": "x"}}, {"type": "Patient", "display": "#p"}],
}


@pytest.mark.parametrize("type_name", sorted(DATATYPE_NODES))
def test_a_datatype_invariant_skipped_for_absent_elements_holds_on_nodes_without_them(type_name: str) -> None:
    root = {"resourceType": "Observation", "contained": [{"resourceType": "Patient", "id": "p"}]}
    checked = 0
    for key, expression, _ in definitions().constraints[type_name].get("", []):
        elements = holds_without(key, expression)
        if elements is None:
            continue
        for node in DATATYPE_NODES[type_name]:
            assert not elements & {name.lstrip("_") for name in node}
            verdict = fhirpathpy.compile(expression, models["r4"], {"traceFn": lambda *_: None})(
                ResourceNode.create_node(node, type_name), {"resource": root, "rootResource": root})
            assert verdict != [False], f"{key} fails on {node} without {sorted(elements)}"
            checked += 1
    assert checked
