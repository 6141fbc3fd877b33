"""Factory fixtures for FHIR resources (synthetic data only, no real patient)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
LOINC = "http://loinc.org"

Factory = Callable[..., dict[str, Any]]


@pytest.fixture
def observation() -> Factory:
    """An R4 Observation; `category` is an observation-category code or None."""

    def make(category: str | None = "laboratory", **extra: Any) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "resourceType": "Observation",
            "id": "hb-1",
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "718-7", "display": "Hemoglobin"}]},
            "subject": {"reference": "Patient/example"},
            "effectiveDateTime": "2024-05-01T09:30:00Z",
            "valueQuantity": {"value": 13.5, "unit": "g/dL", "system": "http://unitsofmeasure.org", "code": "g/dL"},
        }
        if category is not None:
            resource["category"] = [{"coding": [{"system": OBSERVATION_CATEGORY, "code": category}]}]
        resource.update(extra)
        return resource

    return make


@pytest.fixture
def condition() -> Factory:
    def make(**extra: Any) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "resourceType": "Condition",
            "clinicalStatus": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
            },
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006", "display": "Diabetes mellitus type 2"}]},
            "subject": {"reference": "Patient/example"},
        }
        resource.update(extra)
        return resource

    return make


@pytest.fixture
def medication_request() -> Factory:
    def make(**extra: Any) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {
                "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "860975"}]
            },
            "subject": {"reference": "Patient/example"},
            "dosageInstruction": [{"text": "500 mg twice daily"}],
        }
        resource.update(extra)
        return resource

    return make


@pytest.fixture
def document_reference() -> Factory:
    """A DocumentReference; `loinc_type` sets DocumentReference.type."""

    def make(loinc_type: str = "11506-3", **extra: Any) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "resourceType": "DocumentReference",
            "status": "current",
            "type": {"coding": [{"system": LOINC, "code": loinc_type}]},
            "subject": {"reference": "Patient/example"},
            "content": [{"attachment": {"contentType": "application/pdf", "url": "urn:uuid:5f0c2a4e-1111-4d2b-9a3e-000000000001"}}],
        }
        resource.update(extra)
        return resource

    return make
