"""A FHIR Bundle imported as one record per entry, with its internal references resolvable when read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ehr_client.batch.bundle import import_bundle
from ehr_client.client import EHRClient
from ehr_client.errors import InvalidRecord
from ehr_client.records import Scope

PATIENT_URL = "urn:uuid:7b2f1c2e-3a4d-4e5f-8a9b-0c1d2e3f4a5b"
EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "fhir-r4-examples"


def _history(extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    entries = [
        {"fullUrl": PATIENT_URL, "resource": {"resourceType": "Patient", "gender": "female", "birthDate": "1980-02-03"}},
        {"fullUrl": "urn:uuid:0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "resource": {
            "resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4", "display": "HbA1c"}]},
            "subject": {"reference": PATIENT_URL}, "valueQuantity": {"value": 6.1, "unit": "%"}}},
        {"fullUrl": "urn:uuid:1b2c3d4e-5f6a-4b7c-9d8e-0f1a2b3c4d5e", "resource": {
            "resourceType": "Condition", "code": {"text": "Type 2 diabetes"}, "subject": {"reference": PATIENT_URL}}},
    ]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries + (extra or [])}


def test_each_entry_becomes_a_record_whose_references_resolve(people: dict[str, EHRClient], tmp_path: Path) -> None:
    patient = people["patient"]
    path = tmp_path / "history.json"
    path.write_text(json.dumps(_history()))
    result = import_bundle(patient, patient.address, path)

    patient_ref, observation_ref, _ = [ref for _, ref in result.entries]
    assert patient_ref == "Patient/7b2f1c2e-3a4d-4e5f-8a9b-0c1d2e3f4a5b"
    infos = {r.record_id: r for r in patient.list_records(patient.address)}
    scopes = sorted(infos[r].scope for r in result.summary.record_ids)
    assert scopes == sorted([int(Scope.DEMOGRAPHICS), int(Scope.LAB), int(Scope.CONDITIONS)])
    back = {patient.read_record(r).resource()["resourceType"]: patient.read_record(r).resource()
            for r in result.summary.record_ids}
    assert back["Observation"]["subject"]["reference"] == patient_ref
    assert f"Patient/{back['Patient']['id']}" == patient_ref
    assert back["Condition"]["subject"]["reference"] == patient_ref

    again = import_bundle(patient, patient.address, path)
    assert (again.summary.stored, again.summary.skipped) == (0, 3)
    assert len(patient.list_records(patient.address)) == 3


def test_invalid_entries_are_all_listed_or_skipped_on_request(people: dict[str, EHRClient], tmp_path: Path) -> None:
    patient = people["patient"]
    bad = [{"fullUrl": "urn:uuid:2c3d4e5f-6a7b-4c8d-8e9f-1a2b3c4d5e6f", "resource": {
        "resourceType": "Observation", "status": "banana", "code": {"text": "x"}}}]
    path = tmp_path / "history.json"
    path.write_text(json.dumps(_history(bad)))
    with pytest.raises(InvalidRecord, match=r"1 of 4 Bundle entries are invalid.*entry 3: Bundle.entry\[3\].resource.status"):
        import_bundle(patient, patient.address, path)
    assert patient.list_records(patient.address) == []
    result = import_bundle(patient, patient.address, path, skip_invalid=True)
    assert [i for i, _ in result.skipped] == [3] and len(result.summary.record_ids) == 3


def test_an_official_bundle_imports_entry_by_entry(people: dict[str, EHRClient]) -> None:
    patient = people["patient"]
    result = import_bundle(patient, patient.address, EXAMPLES / "bundle-example.json")
    kinds = sorted(patient.read_record(r).resource()["resourceType"] for r in result.summary.record_ids)
    assert kinds == ["Medication", "MedicationRequest"]
