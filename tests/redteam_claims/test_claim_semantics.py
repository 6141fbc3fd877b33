"""The claim extractor reads code, value and date but not the FHIR elements that say whether the
resource asserts them: Immunization.status `not-done` (the vaccine was NOT given), Condition
verificationStatus `refuted` (the diagnosis was ruled out), Observation status `entered-in-error`
(the lab retracted the result). Each record gets an attested claim, and the patient proves the
opposite of what the record says. Acted out with the public API on a real chain and real proofs."""

from __future__ import annotations

from typing import Any

from ehr_client.claims import Claims
from tests.claims.conftest import hba1c

MEASLES = "http://hl7.org/fhir/sid/cvx|03"
DIABETES = "http://snomed.info/sct|44054006"


def _proven(world: dict[str, Claims], author: str, resource: dict[str, Any], asked: str) -> dict[str, Any]:
    """The author writes the record with its claim; the patient proves `asked`; the insurer's check
    passes. Returns the resource as the patient reads it."""
    writer, patient, insurer = world[author], world["patient"], world["insurer"]
    written = writer.add_record(patient.client.address, resource)
    proof = patient.prove(written.record.record_id, asked, verifier=insurer.client.address)
    insurer.check(proof, patient=patient.client.address)
    return patient.client.read_record(written.record.record_id).resource()


def test_a_vaccine_not_given_is_proven_as_received(world: dict[str, Claims]) -> None:
    resource = {"resourceType": "Immunization", "status": "not-done",
                "statusReason": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                                             "code": "PATOBJ"}]},
                "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "03"}]},
                "patient": {"reference": "Patient/p"}, "occurrenceDateTime": "2026-02-01"}
    stored = _proven(world, "hospital", resource, f"type = Immunization and code = {MEASLES}")
    assert stored["status"] == "completed", (
        f"a verified proof says the patient had a measles vaccine; the record says status {stored['status']}")


def test_a_ruled_out_diagnosis_is_proven_as_present(world: dict[str, Claims]) -> None:
    resource = {"resourceType": "Condition", "clinicalStatus": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "inactive"}]},
                "verificationStatus": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "refuted"}]},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
                "subject": {"reference": "Patient/p"}, "onsetDateTime": "2025-10-02"}
    stored = _proven(world, "hospital", resource, f"type = Condition and code = {DIABETES}")
    status = stored["verificationStatus"]["coding"][0]["code"]
    assert status == "confirmed", f"a verified proof says the patient has diabetes; the record says {status}"


def test_a_retracted_lab_result_is_still_proven(world: dict[str, Claims]) -> None:
    resource = hba1c(5.31, "2026-03-13")
    resource["status"] = "entered-in-error"
    stored = _proven(world, "lab", resource,
                     "type = Observation and code = http://loinc.org|4548-4 and unit = % and value < 6.5")
    assert stored["status"] in ("final", "amended", "corrected"), (
        f"a verified proof says HbA1c < 6.5; the lab marked the result {stored['status']}")
