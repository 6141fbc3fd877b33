"""A claim only where the record asserts its fact. The review found the extractor read code, value
and date but not the FHIR elements that say whether the resource asserts them: Immunization.status
`not-done` (the vaccine was NOT given), Condition verificationStatus `refuted` (ruled out),
Observation status `entered-in-error` (retracted by the lab). Each got an attested claim and the
patient proved the opposite of the record. Now such records carry no claim: the author's client
commits nothing and the prover refuses. Acted out with the public API on a real chain."""

from __future__ import annotations

from typing import Any

import pytest

from ehr_client.claims import Claims
from ehr_client.errors import ClaimNotAvailable
from tests.claims.conftest import hba1c

MEASLES = "http://hl7.org/fhir/sid/cvx|03"
DIABETES = "http://snomed.info/sct|44054006"
VER_STATUS = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


def _refused(world: dict[str, Claims], author: str, resource: dict[str, Any], asked: str) -> None:
    writer, patient, insurer = world[author], world["patient"], world["insurer"]
    written = writer.add_record(patient.client.address, resource)
    assert written.commit is None and writer.registry.commitment_of(written.record.record_id) == 0
    with pytest.raises(ClaimNotAvailable):
        patient.prove(written.record.record_id, asked, verifier=insurer.client.address)


def _proven(world: dict[str, Claims], author: str, resource: dict[str, Any], asked: str) -> None:
    writer, patient, insurer = world[author], world["patient"], world["insurer"]
    written = writer.add_record(patient.client.address, resource)
    proof = patient.prove(written.record.record_id, asked, verifier=insurer.client.address)
    assert insurer.check(proof, patient=patient.client.address).patient == patient.client.address


def _immunization(status: str, day: str) -> dict[str, Any]:
    return {"resourceType": "Immunization", "status": status,
            "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "03"}]},
            "patient": {"reference": "Patient/p"}, "occurrenceDateTime": day}


def _condition(verification: str | None, day: str) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Condition",
                                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
                                "subject": {"reference": "Patient/p"}, "onsetDateTime": day}
    if verification is not None:
        resource["verificationStatus"] = {"coding": [{"system": VER_STATUS, "code": verification}]}
    return resource


def test_a_vaccine_not_given_carries_no_claim(world: dict[str, Claims]) -> None:
    asked = f"type = Immunization and code = {MEASLES}"
    _refused(world, "hospital", _immunization("not-done", "2026-02-01"), asked)
    _refused(world, "hospital", {**_immunization("completed", "2026-02-02"), "isSubpotent": True}, asked)
    _proven(world, "hospital", _immunization("completed", "2026-02-03"), asked)


def test_a_diagnosis_not_confirmed_carries_no_claim(world: dict[str, Claims]) -> None:
    asked = f"type = Condition and code = {DIABETES}"
    for day, status in (("2025-10-02", "refuted"), ("2025-10-03", "provisional"), ("2025-10-04", "entered-in-error"),
                        ("2025-10-05", None)):
        _refused(world, "hospital", _condition(status, day), asked)
    _proven(world, "hospital", _condition("confirmed", "2025-10-06"), asked)


def test_a_retracted_or_preliminary_lab_result_carries_no_claim(world: dict[str, Claims]) -> None:
    asked = "type = Observation and code = http://loinc.org|4548-4 and unit = % and value < 6.5"
    for value, status in ((5.31, "entered-in-error"), (5.32, "preliminary"), (5.33, "cancelled")):
        _refused(world, "lab", {**hba1c(value, "2026-03-13"), "status": status}, asked)
    _proven(world, "lab", {**hba1c(5.34, "2026-03-13"), "status": "corrected"}, asked)
