"""Record content a member controls, read exactly: a quantity of `1e400` (valid JSON) once crashed the
claim extractor with OverflowError, a value of 6.50000000000000001 was committed as 6.5 (binary
floats), and a value reported with a comparator (`> 14`) was claimed as 14. Each now carries no claim,
with a typed error for whoever tries to prove about it."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

import pytest

from ehr_client.claims import Claims
from ehr_client.client.model import FHIR_MEDIA_TYPE
from ehr_client.client.write import Prepared
from ehr_client.errors import ClaimNotAvailable, EHRError
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


def test_a_value_with_many_decimals_carries_no_claim(world: dict[str, Claims]) -> None:
    """The record keeps the exact decimal; a claim would have to round it, so there is none."""
    lab, patient, insurer = world["lab"], world["patient"], world["insurer"]
    text = ('{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":'
            '"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],'
            '"code":{"coding":[{"system":"http://loinc.org","code":"4548-4"}]},"effectiveDateTime":"2026-03-11",'
            '"valueQuantity":{"value":6.50000000000000001,"unit":"%","system":"http://unitsofmeasure.org","code":"%"}}')
    written = lab.client.add_record(patient.client.address, text)
    assert lab.commit(written) is None and lab.registry.commitment_of(written.record_id) == 0
    stored = json.loads(patient.client.read_record(written.record_id).data, parse_float=Decimal)
    assert stored["valueQuantity"]["value"] == Decimal("6.50000000000000001")  # the record, not a rounding
    with pytest.raises(ClaimNotAvailable):
        patient.prove(written.record_id, "type = Observation and code = http://loinc.org|4548-4 and value <= 6.5",
                      verifier=insurer.client.address)


def test_a_result_above_the_measuring_range_carries_no_claim(world: dict[str, Claims]) -> None:
    """FHIR Quantity.comparator says the value is a bound (`> 14 %`: above the analyser's range)."""
    lab, patient, insurer = world["lab"], world["patient"], world["insurer"]
    resource = hba1c(14, "2026-03-12")
    resource["valueQuantity"]["comparator"] = ">"
    written = lab.add_record(patient.client.address, resource)
    assert written.commit is None
    with pytest.raises(ClaimNotAvailable):
        patient.prove(written.record.record_id, "type = Observation and code = http://loinc.org|4548-4 and "
                      "unit = % and value <= 14", verifier=insurer.client.address)
