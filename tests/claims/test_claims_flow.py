"""A lab writes an HbA1c result with its claim committed; the patient proves "below 6.5 %" to an
insurer, who checks it with a view call and on chain, without learning the value."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from ehr_client.claims import Claims, ClaimProof, Predicate, predicate_id
from tests.claims.conftest import HBA1C, hba1c

ASKED = f"type = Observation and code = {HBA1C} and unit = % and value < 6.5 and date >= 2026-01-01"


@pytest.fixture(scope="module")
def written(world: dict[str, Claims]) -> Any:
    return world["lab"].add_record(world["patient"].client.address, hba1c(5.9))


@pytest.fixture(scope="module")
def proof(world: dict[str, Claims], written: Any) -> ClaimProof:
    return world["patient"].prove(written.record.record_id, ASKED, verifier=world["insurer"].client.address)


def test_write_commits_the_claim_and_the_chain_names_no_value(world: dict[str, Claims], written: Any,
                                                              events: Callable[[str], list[Any]]) -> None:
    assert written.commit is not None
    committed = [e for e in events("ClaimsCommitted") if bytes(e.args.recordId) == written.record.record_id]
    assert [(e.args.patient, e.args.author) for e in committed] == [
        (world["patient"].client.address, world["lab"].client.address)]
    assert world["lab"].registry.commitment_of(written.record.record_id) != 0
    print(f"\ncommitting a claim: {written.commit.gas_used} gas")


def test_writing_again_commits_nothing_twice(world: dict[str, Claims], written: Any) -> None:
    again = world["lab"].add_record(world["patient"].client.address, hba1c(5.9))
    assert again.record.record_id == written.record.record_id
    assert again.commit is None


def test_insurer_checks_the_proof_without_gas(world: dict[str, Claims], written: Any, proof: ClaimProof) -> None:
    received = ClaimProof.from_json(proof.to_json())
    checked = world["insurer"].check(received, expected=Predicate.parse(ASKED),
                                     patient=world["patient"].client.address)
    assert checked.patient == world["patient"].client.address
    assert checked.predicate_id == predicate_id(received.predicate)


def test_insurer_records_the_check_in_the_patients_audit_trail(world: dict[str, Claims], written: Any,
                                                               proof: ClaimProof,
                                                               events: Callable[[str], list[Any]]) -> None:
    tx = world["insurer"].record_check(proof, expected=Predicate.parse(ASKED))
    proven = [e for e in events("ClaimProven") if bytes(e.args.recordId) == written.record.record_id]
    assert [(e.args.verifier, e.args.patient, bytes(e.args.predicate)) for e in proven] == [
        (world["insurer"].client.address, world["patient"].client.address, predicate_id(proof.predicate))]
    print(f"\nverifying a claim on chain: {tx.gas_used} gas; proof file {len(proof.to_json())} bytes")


def test_proof_file_reveals_no_claim_value_or_date(proof: ClaimProof) -> None:
    text = proof.to_json()
    # Whole numbers only: the proof's field elements are random 77-digit numbers, which hold "5900"
    # somewhere now and then (a CI run failed on exactly that).
    numbers = set(re.findall(r"[0-9][0-9.]*", text))
    assert not numbers & {"5.9", "5900", "20260302"} and "2026-03-02" not in text
    assert set(json.loads(text)) == {"format", "chainId", "claimRegistry", "recordId", "verifier", "challenge",
                                     "predicate", "proof"}


def test_patient_proves_age_and_vaccination(world: dict[str, Claims]) -> None:
    patient_address = world["patient"].client.address
    hospital = world["hospital"]
    person = {"resourceType": "Patient", "birthDate": "2008-11-30", "gender": "female"}
    born = hospital.add_record(patient_address, person)
    assert born.commit is not None
    adult = world["patient"].prove(born.record.record_id, "type = Patient and age >= 18 at 2026-11-30",
                                   verifier=world["insurer"].client.address, challenge=b"\x07" * 32)
    assert world["insurer"].check(adult).patient == patient_address
    assert adult.predicate.describe() == "type = Patient and date <= 2008-11-30"

    cvx = "http://hl7.org/fhir/sid/cvx"
    measles = {"resourceType": "Immunization", "status": "completed",
               "vaccineCode": {"coding": [{"system": cvx, "code": "03", "display": "MMR"}]},
               "patient": {"reference": "Patient/example"}, "occurrenceDateTime": "2010-05-01"}
    shot = hospital.add_record(patient_address, measles)
    vaccinated = world["patient"].prove(shot.record.record_id, f"code in {cvx}|03, {cvx}|94, {cvx}|05",
                                        verifier=world["insurer"].client.address)
    assert world["insurer"].check(vaccinated).patient == patient_address
