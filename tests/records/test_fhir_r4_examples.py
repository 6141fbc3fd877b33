"""Every official FHIR R4 4.0.1 example (tests/data/fhir-r4-examples, HL7, CC0) is accepted, and
survives validate -> canonical bytes -> parse unchanged in FHIR semantics."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ehr_client.records import parse_json, validate_fhir
from ehr_client.records.fhir import fhir_problems, validate_bundle_entries
from ehr_client.records.fhir_r4.invariants import skipped

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "fhir-r4-examples"
FILES = sorted(EXAMPLES.glob("*.json"))

KNOWN_INVALID: dict[str, str] = {}
"""Official examples that break their own specification: file -> the rule. None so far: all 206
pass structure, bindings and the evaluable invariants."""


def test_the_folder_holds_the_206_examples() -> None:
    assert len(FILES) == 206


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_official_example_is_valid_r4_with_invariants(path: Path) -> None:
    problems = [str(p) for p in fhir_problems(path, invariants=True)]

    assert problems == ([KNOWN_INVALID[path.name]] if path.name in KNOWN_INVALID else [])


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_official_example_round_trips_through_canonical_bytes(path: Path) -> None:
    original: Any = parse_json(path.read_bytes())

    record = validate_fhir(path, invariants=False)
    again = parse_json(record.canonical)

    assert record.resource_type == original["resourceType"]
    assert again == original
    assert _same_decimal_text(again, original)
    assert validate_fhir(record.canonical, invariants=False).canonical == record.canonical


def _same_decimal_text(left: Any, right: Any) -> bool:
    """Equal *and* same precision: 1.50 stays 1.50 (Decimal equality alone ignores trailing zeros)."""
    if isinstance(left, Decimal) or isinstance(right, Decimal):
        return str(left) == str(right)
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(_same_decimal_text(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(_same_decimal_text(a, b) for a, b in zip(left, right))
    return bool(left == right)


def test_bundle_entries_validate_one_by_one() -> None:
    bundle = EXAMPLES / "bundle-example.json"
    parsed: Any = parse_json(bundle.read_bytes())
    entries = parsed["entry"]

    judged = validate_bundle_entries(bundle)
    records = [entry.record for entry in judged if entry.record is not None]

    assert [entry.problems for entry in judged] == [()] * len(entries)
    assert [r.resource_type for r in records] == [e["resource"]["resourceType"] for e in entries]
    assert [parse_json(r.canonical) for r in records] == [e["resource"] for e in entries]


def test_invariants_skipped_are_listed_with_a_reason() -> None:
    listed = skipped()

    assert {s.key for s in listed} == {"app-4", "ctm-1", "txt-1", "txt-2"}
    assert all(s.reason for s in listed)
