"""`validate_fhir` takes shortcuts the problem listing does not: canonical bytes made once, the
invariants evaluated on its own parse instead of a copy, each type's invariants compiled on first
use. It must accept and reject exactly what `fhir_problems` (the copy-and-evaluate path) does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ehr_client.errors import InvalidRecord
from ehr_client.records import canonicalize, validate_fhir
from ehr_client.records.fhir import fhir_problems
from ehr_client.records.fhir_r4.invariants import skipped

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
    assert all(problem in messages.pop() for problem in listed)
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
