"""A member with the patient's amend grant writes a record its own client would refuse (the FHIR check is
client-side only, and the reader's check passes `1e400`) and commits any value for it. The patient's
prover parses it with json.loads (float('inf')) and the claim extractor raises OverflowError."""

from __future__ import annotations

import hashlib

import pytest

from ehr_client.claims import Claims
from ehr_client.client.model import FHIR_MEDIA_TYPE
from ehr_client.client.write import Prepared
from ehr_client.errors import EHRError
from ehr_client.records import Scope

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
