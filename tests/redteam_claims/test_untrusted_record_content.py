"""A member with the patient's amend grant writes a record its own client would refuse (the FHIR check is
client-side only, and the reader's check passes `1e400`) and commits any value for it. The patient's
prover parses it with json.loads (float('inf')) and the claim extractor raises OverflowError."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

import pytest

from ehr_client.claims import Claims
from ehr_client.client.model import FHIR_MEDIA_TYPE
from ehr_client.client.write import Prepared
from ehr_client.errors import EHRError
from ehr_client.records import Scope
from tests.claims.conftest import hba1c

ASKED = "type = Observation and code = http://loinc.org|4548-4 and unit = % and value < 6.5"
HUGE = (b'{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org",'
        b'"code":"4548-4"}]},"effectiveDateTime":"2026-03-09","valueQuantity":{"value":1e400,"unit":"%",'
        b'"system":"http://unitsofmeasure.org","code":"%"}}')


def test_a_members_record_with_an_overflowing_number_crashes_the_patients_prover(world: dict[str, Claims]) -> None:
    hospital, patient, insurer = world["hospital"], world["patient"], world["insurer"]
    # 1e400 is valid JSON; Python reads it as float('inf'), which the project's validator would refuse.
    written = hospital.client.writer.write(
        patient.client.address, Prepared(int(Scope.LAB), FHIR_MEDIA_TYPE, HUGE, hashlib.sha256(HUGE).digest()),
        previous=None, version=1)
    hospital.registry.commit(hospital.client.identity.account, written.salt, 12345)  # any value: it is a member
    # The patient asks to prove about it: a typed error (EHRError) is the contract of every client call.
    with pytest.raises(EHRError):
        patient.prove(written.record_id, ASKED, verifier=insurer.client.address)


def test_a_value_with_many_decimals_is_rounded_into_a_claim_the_record_does_not_make(
        world: dict[str, Claims]) -> None:
    """extract.py promises that a quantity of more than three decimals carries no claim ("a claim is never
    rounded into something the record does not say"). The record is canonical JSON with the exact
    decimal, but the extractor parses it with json.loads (binary floats): 6.50000000000000001 becomes
    6.5, and a proof of `value <= 6.5` verifies about a record whose value is above 6.5."""
    lab, patient, insurer = world["lab"], world["patient"], world["insurer"]
    text = ('{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":'
            '"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],'
            '"code":{"coding":[{"system":"http://loinc.org","code":"4548-4"}]},"effectiveDateTime":"2026-03-11","valueQuantity":{"value":6.50000000000000001,'
            '"unit":"%","system":"http://unitsofmeasure.org","code":"%"}}')
    written = lab.client.add_record(patient.client.address, text)
    lab.commit(written)
    asked = "type = Observation and code = http://loinc.org|4548-4 and unit = % and value <= 6.5"
    proof = patient.prove(written.record_id, asked, verifier=insurer.client.address)
    insurer.check(proof, patient=patient.client.address)  # the chain accepts "value <= 6.5"
    stored = json.loads(patient.client.read_record(written.record_id).data, parse_float=Decimal)
    assert stored["valueQuantity"]["value"] <= Decimal("6.5"), (
        f"a verified proof says value <= 6.5; the record says {stored['valueQuantity']['value']}")


def test_a_result_above_the_measuring_range_is_claimed_as_its_limit(world: dict[str, Claims]) -> None:
    """FHIR Quantity.comparator says how to read the value: an HbA1c reported as `> 14 %` (above the
    analyser's range) is some value above 14. The extractor drops the comparator and commits 14, so the
    patient proves `value <= 14` about a result the lab reported as above 14."""
    lab, patient, insurer = world["lab"], world["patient"], world["insurer"]
    resource = hba1c(14, "2026-03-12")
    resource["valueQuantity"]["comparator"] = ">"
    written = lab.add_record(patient.client.address, resource)
    assert written.commit is not None  # the lab's client committed a claim for it
    asked = "type = Observation and code = http://loinc.org|4548-4 and unit = % and value <= 14"
    proof = patient.prove(written.record.record_id, asked, verifier=insurer.client.address)
    insurer.check(proof, patient=patient.client.address)  # the chain accepts "value <= 14"
    stored = patient.client.read_record(written.record.record_id).resource()["valueQuantity"]
    assert stored.get("comparator") in (None, "<", "<="), (
        f"a verified proof says value <= 14; the record says value {stored['comparator']} {stored['value']}")
