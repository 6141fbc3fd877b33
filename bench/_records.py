"""The FHIR resources the benchmarks write: distinct glucose Observations of about 1 KB each."""

from __future__ import annotations

from typing import Any

from ehr_client.records import canonicalize


def observation(n: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]},
        "effectiveDateTime": f"2026-01-{1 + n % 28:02d}T08:{n % 60:02d}:00Z",
        "valueQuantity": {"value": 4 + (n % 400) / 100, "unit": "mmol/L"},
        "note": [{"text": f"sample {n}: " + "fasting venous blood, processed within two hours. " * 13}],
    }


def record_size() -> int:
    """Canonical size in bytes of a benchmark record."""
    return len(canonicalize(observation(0)))
