import json

import pytest

from ehr_client.chain.eip712 import grant_typed_data, sign_typed_data
from ehr_client.client import SignedConsent
from ehr_client.errors import (
    AccessDenied,
    ChainUnavailable,
    IntegrityError,
    InvalidGrantee,
    InvalidRecord,
    KeyNotFound,
    RecordErased,
    SignatureError,
    TransactionReverted,
)
from ehr_client.records import Scope, canonicalize
from ehr_client.records.purpose import DEFAULT_PURPOSE, parse_purpose
from tests.constants import DAY

LAB, CONDITIONS = int(Scope.LAB), int(Scope.CONDITIONS)


def _lab_writes(people, resource, *, access="amend", scope=LAB):
    patient, lab = people["patient"], people["lab"]
    patient.grant(lab.address, scope, access=access, expires_at=patient.chain.now() + DAY, share_keys=False)
    return lab.add_record(patient.address, resource)


def test_lab_writes_patient_signs_hospital_relays_doctor_reads(people, observation):
    patient, hospital, doctor = people["patient"], people["hospital"], people["doctor"]
    written = _lab_writes(people, observation)

    signed = patient.sign_grant(doctor.address, LAB, expires_at=patient.chain.now() + DAY,
                                deadline=patient.chain.now() + 3600)
    relayed = SignedConsent.from_json(signed.to_json())
    assert relayed.key_share is None  # no keys travel with a signature that may yet be voided
    hospital.relay_grant(relayed)
    key_share, shared = patient.share_keys(doctor.address, LAB)
    assert shared == 1

    result = doctor.read_record(written.record_id, key_share=key_share)
    assert result.data == canonicalize(observation)
    assert result.resource()["code"]["coding"][0]["code"] == "2345-7"
    assert result.info.author == people["lab"].address and result.info.scope == LAB
    assert doctor.verify_record(written.record_id).ok


def test_patient_reads_own_record_without_share(people, observation):
    written = _lab_writes(people, observation)
    assert people["patient"].read_record(written.record_id).data == canonicalize(observation)
    assert people["lab"].read_record(written.record_id).data == canonicalize(observation)


def test_every_read_is_an_on_chain_access_request(people, observation):
    patient, doctor = people["patient"], people["doctor"]
    written = _lab_writes(people, observation)
    grant = patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + DAY)
    doctor.read_record(written.record_id, key_share=grant.key_share)
    doctor.read_record(written.record_id, key_share=grant.key_share)
    opened = [e for e in patient.audit_trail(patient.address) if e.event == "AccessRequested"]
    assert [e.actor for e in opened] == [doctor.address, doctor.address]
    assert all(e.record_id == written.record_id and e.timestamp > 0 and e.tx_hash.startswith("0x") for e in opened)


class _CountingStore:
    """The real store, with a count of reads, to prove nothing is fetched before the chain agrees."""

    def __init__(self, inner):
        self.inner, self.reads = inner, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def get(self, cid):
        self.reads += 1
        return self.inner.get(cid)

    def iter_get(self, cid):
        self.reads += 1
        return self.inner.iter_get(cid)


@pytest.mark.parametrize("situation", ["never granted", "expired", "revoked", "other scope"])
def test_read_denied_and_nothing_fetched(people, client_for, store, observation, condition, situation):
    patient = people["patient"]
    written = _lab_writes(people, observation)
    counting = _CountingStore(store)
    doctor = client_for("doctor", blob_store=counting)
    share = None
    if situation == "expired":
        share = patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + 5).key_share
        patient.chain.w3.provider.make_request("evm_increaseTime", [10])
        patient.chain.w3.provider.make_request("evm_mine", [])
    elif situation == "revoked":
        share = patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + DAY).key_share
        patient.revoke(doctor.address)
    elif situation == "other scope":
        share = patient.grant(doctor.address, CONDITIONS, expires_at=patient.chain.now() + DAY).key_share
    with pytest.raises(AccessDenied, match="may not read"):
        doctor.read_record(written.record_id, key_share=share)
    assert counting.reads == 0


def test_key_share_for_someone_else_is_useless(people, observation):
    patient, doctor, hospital = people["patient"], people["doctor"], people["hospital"]
    written = _lab_writes(people, observation)
    doctor_share = patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + DAY).key_share
    patient.grant(hospital.address, LAB, expires_at=patient.chain.now() + DAY, share_keys=False)
    with pytest.raises(KeyNotFound):
        hospital.read_record(written.record_id, key_share=doctor_share)


def test_stranger_cannot_write(people, observation, store):
    with pytest.raises(AccessDenied, match="may not write"):
        people["stranger"].add_record(people["patient"].address, observation)
    assert list(store.root.rglob("b*")) == []


def test_malformed_fhir_is_refused_naming_the_field_and_nothing_is_stored(people, observation, store):
    observation.pop("status")
    with pytest.raises(InvalidRecord, match="Observation.status"):
        _lab_writes(people, observation)
    bad_type = {"resourceType": "Observation", "status": "final", "code": {"coding": "not-a-list"}}
    with pytest.raises(InvalidRecord, match="Observation.code.coding"):
        people["patient"].add_record(people["patient"].address, bad_type)
    assert [p for p in store.root.rglob("*") if p.is_file()] == []
    assert people["patient"].list_records(people["patient"].address) == []


def test_tampered_blob_is_an_integrity_error(people, observation, store):
    written = _lab_writes(people, observation)
    path = store.path_for(written.cid)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.chmod(0o600)
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        people["patient"].read_record(written.record_id)
    assert not people["patient"].verify_record(written.record_id).ok


def test_amendment_keeps_history_and_versions(people, observation):
    patient, lab = people["patient"], people["lab"]
    first = _lab_writes(people, observation)
    observation["valueQuantity"]["value"] = 6.1
    second = lab.amend_record(first.record_id, observation)
    history = patient.list_records(patient.address)
    assert [(r.record_id, r.status) for r in history] == [(first.record_id, "superseded"), (second.record_id, "active")]
    assert history[1].previous_id == first.record_id
    assert json.loads(patient.read_record(second.record_id).data)["valueQuantity"]["value"] == 6.1
    assert json.loads(patient.read_record(first.record_id).data)["valueQuantity"]["value"] == 5.40
    assert all(v.ok for v in patient.verify_all(patient.address))


def test_large_pdf_streams_through_the_store(people, tmp_path):
    patient = people["patient"]
    pdf = tmp_path / "scan.pdf"
    with pdf.open("wb") as handle:
        handle.write(b"%PDF-1.7\n")
        for i in range(40):
            handle.write(bytes([i % 251]) * 100_000)
    written = patient.add_record(patient.address, pdf, category="pdf")
    result = patient.read_record(written.record_id)
    assert result.media_type == "application/pdf" and result.data == pdf.read_bytes()


def test_revert_is_translated_into_a_typed_error(people):
    patient = people["patient"]
    with pytest.raises(TransactionReverted) as info:
        patient.grant(patient.address, LAB, expires_at=patient.chain.now() + DAY)
    assert info.value.error_name == "ConsentInvalidGrantee"
    assert "cannot grant to themselves" in str(info.value)


def test_a_grant_that_would_open_nothing_is_refused_before_anything_is_signed_or_sent(people):
    """The chain stores a grant to anyone and asks for membership when the grantee acts; the
    client refuses the grant that could not be used, whether granted, signed or relayed."""
    patient, hospital, stranger, insurer = (people[n] for n in ("patient", "hospital", "stranger", "insurer"))
    chain = patient.chain
    sent_before = {c.address: chain.w3.eth.get_transaction_count(c.address) for c in (patient, hospital)}
    ends, deadline = chain.now() + DAY, chain.now() + 3600
    with pytest.raises(InvalidGrantee, match="not a consortium member"):
        patient.grant(stranger.address, LAB, expires_at=ends, share_keys=False)
    with pytest.raises(InvalidGrantee, match="only a provider or a lab may amend"):
        patient.grant(insurer.address, LAB, access="amend", expires_at=ends, share_keys=False)
    with pytest.raises(InvalidGrantee, match="not a consortium member"):
        patient.sign_grant(stranger.address, LAB, expires_at=ends, deadline=deadline, share_keys=False)
    with pytest.raises(InvalidGrantee, match="is an insurer; only a provider or a lab may amend"):
        patient.grant_document(insurer.address, LAB, access="amend", expires_at=ends, deadline=deadline)
    # Signed in another wallet anyway and brought to a relayer, who pays for nothing that opens nothing.
    typed = grant_typed_data(patient.consent_domain(), patient=patient.address, grantee=insurer.address, scopes=LAB,
                             may_amend=True, purpose=parse_purpose(DEFAULT_PURPOSE).word, grant_ends_at=ends,
                             nonce=0, signature_valid_until=deadline)
    with pytest.raises(InvalidGrantee, match="only a provider or a lab may amend"):
        hospital.relay_grant(SignedConsent(typed, sign_typed_data(patient.identity.account.key, typed)))
    assert {c.address: chain.w3.eth.get_transaction_count(c.address) for c in (patient, hospital)} == sent_before
    for grantee in (stranger, insurer):
        grant = chain.call(chain.consent.functions.getGrant(patient.address, grantee.address), action="read grant")
        assert grant[2] == 0  # no access stored
    patient.grant(insurer.address, LAB, expires_at=ends, share_keys=False)  # read is for any active member
    assert chain.call(chain.consent.functions.canRead(patient.address, insurer.address, LAB), action="can read")


def test_replayed_signed_grant_is_refused(people):
    patient, hospital, doctor = people["patient"], people["hospital"], people["doctor"]
    signed = patient.sign_grant(doctor.address, LAB, expires_at=patient.chain.now() + DAY,
                                deadline=patient.chain.now() + 3600, share_keys=False)
    hospital.relay_grant(signed)
    patient.revoke(doctor.address)
    with pytest.raises(SignatureError, match="used already"):  # a ConsentRefused (exit 3)
        hospital.relay_grant(signed)


def test_signed_revocation_relayed(people, observation):
    patient, hospital, doctor = people["patient"], people["hospital"], people["doctor"]
    written = _lab_writes(people, observation)
    share = patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + DAY).key_share
    hospital.relay_revoke(patient.sign_revoke(doctor.address, deadline=patient.chain.now() + 3600))
    with pytest.raises(AccessDenied):
        doctor.read_record(written.record_id, key_share=share)


def test_erased_record_reads_fail_cleanly(people, observation):
    patient = people["patient"]
    written = patient.add_record(patient.address, observation)
    patient.chain.transact(patient.identity.account, patient.chain.records.functions.tombstone(written.record_id),
                           action="erase")
    with pytest.raises(RecordErased):
        patient.read_record(written.record_id)


def test_unreachable_node_is_chain_unavailable(suite):
    from ehr_client.chain.client import ChainClient

    with pytest.raises(ChainUnavailable, match="cannot reach"):
        ChainClient("http://127.0.0.1:9", suite.deployment, timeout=2)


def test_anchor_timeout_then_retry_reuses_the_stored_blob(people, observation, store):
    patient = people["patient"]
    w3 = patient.chain.w3
    patient.chain.timeout = 1
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        with pytest.raises(ChainUnavailable, match="not mined"):
            patient.add_record(patient.address, observation)
        blobs = [p for p in store.root.rglob("*") if p.is_file()]
        assert len(blobs) == 1
        w3.provider.make_request("anvil_dropAllTransactions", [])
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
        patient.chain.timeout = 30
    assert patient.list_records(patient.address) == []

    retried = patient.add_record(patient.address, observation)
    assert retried.reused_pending
    assert [p for p in store.root.rglob("*") if p.is_file()] == blobs
    assert [r.record_id for r in patient.list_records(patient.address)] == [retried.record_id]
    assert patient.journal.pending() == []


def test_reads_survive_drift_between_keystore_and_on_chain_key_versions(people, client_for, suite, ids, store,
                                                                        tmp_path, observation):
    from ehr_client.client import EHRClient, Identity

    patient = people["patient"]
    written = _lab_writes(people, observation)
    doctor_id = ids["doctor"]
    relabelled = Identity(doctor_id.account, {5: doctor_id.x25519[1]})  # same key, local version 5, on chain 1
    doctor = EHRClient(suite, store, relabelled, state_dir=tmp_path / "relabelled")
    share = patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + DAY).key_share
    assert doctor.read_record(written.record_id, key_share=share).data == canonicalize(observation)
