"""FHIR exports validate as R4 (fhir.resources R4B models) and carry no health data."""

from __future__ import annotations

import json

from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.consent import Consent

from ehr_client.audit import export_bundle
from ehr_client.records import Scope
from tests.constants import DAY

LAB = int(Scope.LAB)


def _story(people, observation):
    """The real client: a lab writes an Observation, the doctor reads it, the patient revokes; the
    insurer keeps an active grant; a stranger's read is attempted and reverts."""
    patient, lab, doctor = people["patient"], people["lab"], people["doctor"]
    now = patient.chain.now()
    patient.grant(lab.address, LAB, access="amend", expires_at=now + DAY, share_keys=False)
    written = lab.add_record(patient.address, observation)
    grant = patient.grant(doctor.address, LAB, expires_at=now + DAY)
    doctor.read_record(written.record_id, key_share=grant.key_share)
    patient.revoke(doctor.address)
    patient.grant(people["insurer"].address, LAB, expires_at=now + 2 * DAY, share_keys=False)
    return written


def test_export_validates_as_fhir_and_holds_no_health_data(people, observation, script, open_index):
    start = script.block()
    written = _story(people, observation)
    failed = script.failed_read("stranger", written.record_id)
    patient = people["patient"]
    index = open_index()
    index.sync(transactions_from=start)

    document = export_bundle(index, patient=patient.address, now=patient.chain.now())
    bundle = Bundle.model_validate(document)
    resources = [entry.resource for entry in bundle.entry]
    events = [r for r in resources if isinstance(r, AuditEvent)]
    consents = [r for r in resources if isinstance(r, Consent)]
    rows = index.trail(patient=patient.address)
    assert len(events) == len(rows) and len(consents) == 3  # lab, doctor, insurer
    for resource in resources:  # each also validates on its own
        type(resource).model_validate(resource.model_dump(by_alias=True))

    read = next(e for e in events if e.subtype[0].code == "ConsentManager.AccessRequested")
    assert read.action == "R" and read.outcome == "0"
    assert read.agent[0].who.identifier.value == f"eip155:{patient.chain.chain_id}:{people['doctor'].address}"
    assert {e.what.identifier.value for e in read.entity} >= {"0x" + written.record_id.hex(),
                                                             f"eip155:31337:{patient.address}"}
    attempt = next(e for e in events if any(x.what.identifier.value == failed for x in e.entity))
    assert attempt.outcome == "4" and "ConsentUnauthorized" in attempt.outcomeDesc

    by_grantee = {c.provision.actor[0].reference.identifier.value.rsplit(":", 1)[1]: c for c in consents}
    assert by_grantee[people["doctor"].address].status == "inactive"  # revoked
    assert by_grantee[people["insurer"].address].status == "active"
    assert by_grantee[people["lab"].address].provision.action[1].coding[0].code == "correct"  # amend grant
    assert by_grantee[people["insurer"].address].provision.code[0].coding[0].code == "lab"

    text = json.dumps(document)
    for health_data in ("Glucose", "2345-7", "loinc.org/2345", "mmol", "5.4", "Observation", "laboratory"):
        assert health_data not in text
    for pointer in (written.cid, written.content_hash.hex()):
        assert pointer not in text


def test_consent_expires_in_the_export_once_its_time_has_passed(people, open_index):
    patient = people["patient"]
    expires = patient.chain.now() + DAY
    patient.grant(people["doctor"].address, LAB, expires_at=expires, share_keys=False)
    index = open_index()
    index.sync()

    def status(now):
        document = export_bundle(index, patient=patient.address, audit_events=False, now=now)
        return [entry["resource"]["status"] for entry in document["entry"]]

    assert status(expires - 1) == ["active"]
    assert status(expires) == ["inactive"]


def test_consent_shows_the_purpose_of_use_the_patient_stated(people, script, open_index):
    patient = people["patient"]
    start = script.block()
    now = patient.chain.now()
    patient.grant(people["insurer"].address, LAB, expires_at=now + DAY, share_keys=False, purpose="payment")
    patient.grant(people["doctor"].address, LAB, expires_at=now + DAY, share_keys=False, purpose="research")
    index = open_index()
    index.sync(transactions_from=start)
    bundle = Bundle.model_validate(export_bundle(index, patient=patient.address, audit_events=False,
                                                 now=patient.chain.now()))
    purposes = {c.provision.actor[0].reference.identifier.value.rsplit(":", 1)[1]:
                [(p.system, p.code) for p in c.provision.purpose] for c in (e.resource for e in bundle.entry)}
    act_reason = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
    assert purposes[people["insurer"].address] == [(act_reason, "HPAYMT")]
    assert purposes[people["doctor"].address] == [(act_reason, "HRESCH")]
    assert any("for research" in row.detail for row in index.trail(patient=patient.address))
