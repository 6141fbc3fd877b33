import ape
import pytest
from eth_utils import keccak

from ehr_client.chain.eip712 import Domain, grant_typed_data, revoke_typed_data, sign_typed_data
from tests.batches import make_batch
from tests.constants import (
    ACCESS_AMEND,
    ACCESS_READ,
    ACTION,
    CONDITION_SCOPE,
    CONSENT_DOMAIN_NAME,
    DAY,
    LAB_SCOPE,
    MENTAL_SCOPE,
    PURPOSE,
)

HOUR = 3600


def test_grant_then_can_read_in_scope_only(network, consent, patient, doctor, chain):
    expires = chain.pending_timestamp + DAY
    tx = consent.grant(doctor, LAB_SCOPE | CONDITION_SCOPE, ACCESS_READ, expires, PURPOSE, sender=patient)
    event = tx.events.filter(consent.AccessGranted)[0]
    assert (event.patient, event.grantee, event.scopes, event.access, event.expiresAt, event.purposeHash) == (
        patient.address, doctor.address, LAB_SCOPE | CONDITION_SCOPE, ACCESS_READ, expires, keccak(text=PURPOSE)
    )
    assert consent.canRead(patient, doctor, LAB_SCOPE)
    assert consent.canRead(patient, doctor, LAB_SCOPE | CONDITION_SCOPE)
    assert not consent.canRead(patient, doctor, MENTAL_SCOPE)
    assert not consent.canRead(patient, doctor, LAB_SCOPE | MENTAL_SCOPE)
    assert not consent.canRead(patient, doctor, 0)
    assert not consent.canAmend(patient, doctor, LAB_SCOPE)


def test_patient_can_always_read_and_amend_own(network, consent, patient):
    assert consent.canRead(patient, patient, MENTAL_SCOPE)
    assert consent.canAmend(patient, patient, MENTAL_SCOPE)


def test_granting_same_terms_twice_emits_nothing(network, consent, patient, doctor, chain):
    expires = chain.pending_timestamp + DAY
    consent.grant(doctor, LAB_SCOPE, ACCESS_READ, expires, PURPOSE, sender=patient)
    tx = consent.grant(doctor, LAB_SCOPE, ACCESS_READ, expires, PURPOSE, sender=patient)
    assert not tx.events.filter(consent.AccessGranted)


def test_expired_grant_denies(network, consent, patient, doctor, grant, chain):
    grant(doctor, ttl=HOUR)
    assert consent.canRead(patient, doctor, LAB_SCOPE)
    chain.pending_timestamp += HOUR + 1
    chain.mine()
    assert not consent.canRead(patient, doctor, LAB_SCOPE)


def test_revoked_grant_denies(network, consent, patient, doctor, grant):
    grant(doctor)
    tx = consent.revoke(doctor, sender=patient)
    event = tx.events.filter(consent.AccessRevoked)[0]
    assert (event.patient, event.grantee) == (patient.address, doctor.address)
    assert not consent.canRead(patient, doctor, LAB_SCOPE)
    assert consent.getGrant(patient, doctor).access == 0
    with ape.reverts(consent.ConsentNoGrant, patient=patient.address, grantee=doctor.address):
        consent.revoke(doctor, sender=patient)


def test_suspended_member_loses_read_access(network, consent, consortium, governor, patient, doctor, grant):
    grant(doctor)
    consortium.suspend(doctor, sender=governor)
    assert not consent.canRead(patient, doctor, LAB_SCOPE)


@pytest.mark.parametrize(
    "scopes, access, ttl",
    [(0, ACCESS_READ, DAY), (LAB_SCOPE, 0, DAY), (LAB_SCOPE, ACCESS_READ, 0)],
)
def test_grant_rejects_invalid_terms(network, consent, patient, doctor, chain, scopes, access, ttl):
    expires = chain.pending_timestamp + ttl if ttl else 1
    with ape.reverts(consent.ConsentInvalidTerms, scopes=scopes, access=access, expiresAt=expires):
        consent.grant(doctor, scopes, access, expires, PURPOSE, sender=patient)


def test_grant_to_oneself_is_refused(network, consent, patient, chain):
    with ape.reverts(consent.ConsentInvalidGrantee, grantee=patient.address):
        consent.grant(patient, LAB_SCOPE, ACCESS_READ, chain.pending_timestamp + DAY, PURPOSE, sender=patient)


def test_a_grant_to_whom_may_not_act_on_it_gives_nothing_until_the_consortium_lets_them(
    network, consent, records, consortium, governor, governors, admit, patient, stranger, insurer, doctor, chain,
    add_record,
):
    """Membership is asked when the grantee acts, not when the patient decides (the grant costs
    no call into Consortium): a stranger, a suspended provider and an insurer with amend terms
    hold a grant that opens nothing, until admission or reinstatement."""
    expires = chain.pending_timestamp + DAY
    lab_record = add_record(scope=LAB_SCOPE)
    consortium.suspend(doctor, sender=governor)
    consent.grant(stranger, LAB_SCOPE, ACCESS_READ, expires, PURPOSE, sender=patient)
    consent.grant(doctor, LAB_SCOPE, ACCESS_READ, expires, PURPOSE, sender=patient)
    consent.grant(insurer, LAB_SCOPE, ACCESS_AMEND, expires, PURPOSE, sender=patient)
    for reader in (stranger, doctor):
        assert not consent.canRead(patient, reader, LAB_SCOPE)
        with ape.reverts(consent.ConsentUnauthorized, caller=reader.address, recordId=lab_record):
            consent.requestAccess(lab_record, sender=reader)
    assert not consent.canAmend(patient, insurer, LAB_SCOPE)
    assert consent.canRead(patient, insurer, LAB_SCOPE)  # an active member; amend terms include read
    with ape.reverts(records.RecordUnauthorizedAuthor, author=insurer.address, patient=patient.address,
                     scope=LAB_SCOPE):
        records.addRecord(b"\x07" * 32, patient, b"\xcd" * 32, LAB_SCOPE, b"\x01\x55\x12\x20" + b"\xab" * 32,
                          sender=insurer)

    admit(stranger, "lab")
    proposal = consortium.propose(ACTION["reinstate"], doctor.address, 0, DAY, sender=governors[0]).return_value
    consortium.approve(proposal, sender=governors[1])
    consortium.execute(proposal, sender=governors[1])
    for reader in (stranger, doctor):
        assert consent.canRead(patient, reader, LAB_SCOPE)
        assert consent.requestAccess(lab_record, sender=reader).events.filter(consent.AccessRequested)
    assert not consent.canAmend(patient, insurer, LAB_SCOPE)


def test_amend_grant_implies_read(network, consent, patient, lab, grant):
    grant(lab, access=ACCESS_AMEND)
    assert consent.canAmend(patient, lab, LAB_SCOPE)
    assert consent.canRead(patient, lab, LAB_SCOPE)


# --- EIP-712 signed consent -------------------------------------------------------------------


def _domain(chain, contract):
    return Domain(CONSENT_DOMAIN_NAME, chain.chain_id, contract.address)


def _signed_grant(consent, chain, patient, grantee, *, scopes=LAB_SCOPE, may_amend=False, chain_id=None,
                  contract=None, nonce=None, deadline=None, expires=None):
    expires = expires or chain.pending_timestamp + DAY
    deadline = deadline if deadline is not None else chain.pending_timestamp + HOUR
    domain = Domain(CONSENT_DOMAIN_NAME, chain_id or chain.chain_id, (contract or consent).address)
    typed = grant_typed_data(
        domain, patient=patient.address, grantee=grantee.address, scopes=scopes, may_amend=may_amend,
        purpose=PURPOSE, grant_ends_at=expires, nonce=consent.nonces(patient, grantee) if nonce is None else nonce,
        signature_valid_until=deadline,
    )
    return (patient.address, grantee.address, scopes, may_amend, PURPOSE, expires, deadline,
            sign_typed_data(patient.private_key, typed))


def test_grant_by_signature_relayed_by_hospital(network, consent, patient, doctor, hospital, chain):
    args = _signed_grant(consent, chain, patient, doctor)
    tx = consent.grantBySig(*args, sender=hospital)
    assert tx.events.filter(consent.AccessGranted)[0].patient == patient.address
    assert consent.canRead(patient, doctor, LAB_SCOPE)
    assert consent.nonces(patient, doctor) == 1


def test_a_signed_grant_is_taken_up_only_by_an_active_member_when_relayed(
    network, consent, consortium, governor, patient, doctor, insurer, stranger, hospital, chain
):
    """Unlike the patient's own grant, a signature is relayed when someone else chooses (the
    grantee, even): relayed to a non-member, during a suspension, or with amend terms for an
    insurer, it is refused, and the signature stays unused."""
    for grantee, amend in ((stranger, False), (insurer, True)):
        args = _signed_grant(consent, chain, patient, grantee, may_amend=amend)
        with ape.reverts(consent.ConsentInvalidGrantee, grantee=grantee.address):
            consent.grantBySig(*args, sender=grantee)
    args = _signed_grant(consent, chain, patient, doctor)
    consortium.suspend(doctor, sender=governor)
    with ape.reverts(consent.ConsentInvalidGrantee, grantee=doctor.address):
        consent.grantBySig(*args, sender=doctor)
    assert consent.nonces(patient, doctor) == 0 and not consent.canRead(patient, doctor, LAB_SCOPE)


def test_signature_replayed_twice_reverts(network, consent, patient, doctor, hospital, chain):
    args = _signed_grant(consent, chain, patient, doctor)
    consent.grantBySig(*args, sender=hospital)
    consent.revoke(doctor, sender=patient)
    with ape.reverts(consent.ConsentInvalidSignature, patient=patient.address):
        consent.grantBySig(*args, sender=hospital)
    assert not consent.canRead(patient, doctor, LAB_SCOPE)


def test_signature_for_other_chain_id_reverts(network, consent, patient, doctor, hospital, chain):
    args = _signed_grant(consent, chain, patient, doctor, chain_id=chain.chain_id + 1)
    with ape.reverts(consent.ConsentInvalidSignature, patient=patient.address):
        consent.grantBySig(*args, sender=hospital)


def test_signature_for_other_deployment_reverts(network, project, consent, consortium, records, governor, patient,
                                                doctor, hospital, chain):
    other_registry = governor.deploy(project.RecordRegistry, consortium.address, CONSENT_DOMAIN_NAME)
    other = project.ConsentManager.at(other_registry.consentManager())
    args = _signed_grant(consent, chain, patient, doctor, contract=consent)
    with ape.reverts(other.ConsentInvalidSignature, patient=patient.address):
        other.grantBySig(*args, sender=hospital)


def test_signature_with_stale_nonce_reverts(network, consent, patient, doctor, hospital, chain):
    args = _signed_grant(consent, chain, patient, doctor, nonce=5)
    with ape.reverts(consent.ConsentInvalidSignature, patient=patient.address):
        consent.grantBySig(*args, sender=hospital)


def test_signature_past_deadline_reverts(network, consent, patient, doctor, hospital, chain):
    deadline = chain.pending_timestamp + 60
    args = _signed_grant(consent, chain, patient, doctor, deadline=deadline)
    chain.pending_timestamp = deadline + 1
    with ape.reverts(consent.ConsentSignatureExpired, signatureValidUntil=deadline):
        consent.grantBySig(*args, sender=hospital)


def test_relayer_cannot_alter_signed_terms(network, consent, patient, doctor, hospital, stranger, chain):
    p, g, scopes, amend, purpose, expires, deadline, sig = _signed_grant(consent, chain, patient, doctor)
    altered = [
        (p, g, scopes | MENTAL_SCOPE, amend, purpose, expires, deadline, sig),
        (p, g, scopes, True, purpose, expires, deadline, sig),
        (p, g, scopes, amend, "research", expires, deadline, sig),
        (p, g, scopes, amend, purpose, expires + DAY, deadline, sig),
        (p, g, scopes, amend, purpose, expires, deadline + 1, sig),
        (p, hospital.address, scopes, amend, purpose, expires, deadline, sig),
        (stranger.address, g, scopes, amend, purpose, expires, deadline, sig),
    ]
    for args in altered:
        with ape.reverts(consent.ConsentInvalidSignature):
            consent.grantBySig(*args, sender=hospital)


def test_revoke_by_signature(network, consent, patient, doctor, hospital, grant, chain):
    grant(doctor)
    deadline = chain.pending_timestamp + HOUR
    nonce = consent.nonces(patient, doctor)
    typed = revoke_typed_data(_domain(chain, consent), patient=patient.address, grantee=doctor.address, nonce=nonce,
                              signature_valid_until=deadline)
    signature = sign_typed_data(patient.private_key, typed)
    tx = consent.revokeBySig(patient, doctor, nonce, deadline, signature, sender=hospital)
    assert tx.events.filter(consent.AccessRevoked)[0].grantee == doctor.address
    assert not consent.canRead(patient, doctor, LAB_SCOPE)
    with ape.reverts(consent.ConsentNoGrant, patient=patient.address, grantee=doctor.address):
        consent.revokeBySig(patient, doctor, nonce, deadline, signature, sender=hospital)


def test_member_cannot_grant_on_patients_behalf(network, consent, patient, doctor, hospital, chain):
    # the hospital signs a grant naming the patient: the signature is not the patient's
    expires, deadline = chain.pending_timestamp + DAY, chain.pending_timestamp + HOUR
    typed = grant_typed_data(_domain(chain, consent), patient=patient.address, grantee=doctor.address,
                             scopes=LAB_SCOPE, may_amend=False, purpose=PURPOSE, grant_ends_at=expires, nonce=0,
                             signature_valid_until=deadline)
    forged = sign_typed_data(hospital.private_key, typed)
    with ape.reverts(consent.ConsentInvalidSignature, patient=patient.address):
        consent.grantBySig(patient, doctor, LAB_SCOPE, False, PURPOSE, expires, deadline, forged, sender=hospital)


# --- break-glass ----------------------------------------------------------------------------------


def test_break_glass_needs_two_distinct_providers_and_expires(network, consent, patient, doctor, hospital, chain):
    tx = consent.openBreakGlass(patient, 1, sender=doctor)
    assert tx.events.filter(consent.BreakGlassRequested)[0].reason == 1
    assert not consent.canRead(patient, doctor, MENTAL_SCOPE)

    with ape.reverts(consent.ConsentBreakGlassSameProvider, provider=doctor.address):
        consent.confirmBreakGlass(patient, doctor, sender=doctor)

    tx = consent.confirmBreakGlass(patient, doctor, sender=hospital)
    activated = tx.events.filter(consent.BreakGlassActivated)[0]
    assert (activated.requester, activated.approver) == (doctor.address, hospital.address)
    assert consent.canRead(patient, doctor, MENTAL_SCOPE | LAB_SCOPE)
    assert not consent.canAmend(patient, doctor, LAB_SCOPE)

    chain.pending_timestamp = activated.expiresAt + 1
    chain.mine()
    assert not consent.canRead(patient, doctor, LAB_SCOPE)


def test_break_glass_rules(network, consent, patient, doctor, hospital, lab, chain):
    with ape.reverts(consent.ConsentBreakGlassNotProvider, caller=lab.address):
        consent.openBreakGlass(patient, 1, sender=lab)
    with ape.reverts(consent.ConsentBreakGlassInvalidReason, reason=0):
        consent.openBreakGlass(patient, 0, sender=doctor)
    with ape.reverts(consent.ConsentBreakGlassNotPending, patient=patient.address, requester=doctor.address):
        consent.confirmBreakGlass(patient, doctor, sender=hospital)
    consent.openBreakGlass(patient, 2, sender=doctor)
    with ape.reverts(consent.ConsentBreakGlassNotProvider, caller=lab.address):
        consent.confirmBreakGlass(patient, doctor, sender=lab)
    chain.pending_timestamp += 15 * 60 + 1
    with ape.reverts(consent.ConsentBreakGlassNotPending, patient=patient.address, requester=doctor.address):
        consent.confirmBreakGlass(patient, doctor, sender=hospital)


def test_break_glass_closes_when_requester_suspended(network, consent, consortium, governor, patient, doctor, hospital):
    consent.openBreakGlass(patient, 1, sender=doctor)
    consent.confirmBreakGlass(patient, doctor, sender=hospital)
    consortium.suspend(doctor, sender=governor)
    assert not consent.canRead(patient, doctor, LAB_SCOPE)


# --- requestAccess: the on-chain fact of a read --------------------------------------------------


def test_request_access_emits_for_grantee_and_patient(network, consent, patient, doctor, grant, add_record):
    record_id = add_record(scope=LAB_SCOPE)
    grant(doctor, scopes=LAB_SCOPE)
    tx = consent.requestAccess(record_id, sender=doctor)
    event = tx.events.filter(consent.AccessRequested)[0]
    assert (event.recordId, event.patient, event.reader, event.emergency) == (record_id, patient.address, doctor.address, 0)
    tx = consent.requestAccess(record_id, sender=patient)
    assert tx.events.filter(consent.AccessRequested)[0].reader == patient.address


def test_request_access_reverts_without_grant_outside_scope_and_after_revoke(
    network, consent, patient, doctor, stranger, grant, add_record
):
    lab_record = add_record(scope=LAB_SCOPE)
    mental_record = add_record(scope=MENTAL_SCOPE)
    with ape.reverts(consent.ConsentUnauthorized, caller=stranger.address, recordId=lab_record):
        consent.requestAccess(lab_record, sender=stranger)
    grant(doctor, scopes=LAB_SCOPE)
    with ape.reverts(consent.ConsentUnauthorized, caller=doctor.address, recordId=mental_record):
        consent.requestAccess(mental_record, sender=doctor)
    consent.revoke(doctor, sender=patient)
    with ape.reverts(consent.ConsentUnauthorized, caller=doctor.address, recordId=lab_record):
        consent.requestAccess(lab_record, sender=doctor)


def test_request_access_under_break_glass_is_flagged(network, consent, patient, doctor, hospital, add_record):
    record_id = add_record(scope=MENTAL_SCOPE)
    consent.openBreakGlass(patient, 1, sender=doctor)
    consent.confirmBreakGlass(patient, doctor, sender=hospital)
    tx = consent.requestAccess(record_id, sender=doctor)
    assert tx.events.filter(consent.AccessRequested)[0].emergency


def test_request_access_to_erased_or_unknown_record_reverts(network, consent, records, patient, add_record):
    record_id = add_record()
    records.tombstone(record_id, sender=patient)
    with ape.reverts(consent.ConsentRecordErased, recordId=record_id):
        consent.requestAccess(record_id, sender=patient)
    with ape.reverts(records.RecordNotFound, recordId=(77).to_bytes(32, "big")):
        consent.requestAccess((77).to_bytes(32, "big"), sender=patient)


def test_revocation_keeps_nonce_so_old_signatures_stay_dead(network, consent, patient, doctor, hospital, chain):
    first = _signed_grant(consent, chain, patient, doctor)
    consent.grantBySig(*first, sender=hospital)
    consent.revoke(doctor, sender=patient)
    assert consent.nonces(patient, doctor) == 2  # one for the signed grant, one for the revocation
    assert consent.getGrant(patient, doctor).access == 0
    with ape.reverts(consent.ConsentInvalidSignature, patient=patient.address):
        consent.grantBySig(*first, sender=hospital)
    fresh = _signed_grant(consent, chain, patient, doctor)
    consent.grantBySig(*fresh, sender=hospital)
    assert consent.canRead(patient, doctor, LAB_SCOPE)


def test_request_batched_access_checks_proof_and_grant(network, records, consent, lab, patient, doctor, grant):


    grant(lab, scopes=LAB_SCOPE, access=ACCESS_AMEND)
    batch = make_batch(lab.address, patient.address, [LAB_SCOPE] * 3)
    records.anchorBatch(*batch.anchor_args(), sender=lab)
    record_id = batch.record_id(0)
    with ape.reverts(consent.ConsentUnauthorized, caller=doctor.address, recordId=record_id):
        consent.requestBatchedAccess(batch.ref(0), sender=doctor)
    grant(doctor, scopes=LAB_SCOPE)
    tx = consent.requestBatchedAccess(batch.ref(0), sender=doctor)
    event = tx.events.filter(consent.AccessRequested)[0]
    assert (event.recordId, event.patient, event.reader) == (record_id, patient.address, doctor.address)
    with ape.reverts(records.RecordInvalidProof, batchId=batch.batch_id, index=0):
        consent.requestBatchedAccess(batch.ref(0, proof=batch.tree.proof(1)), sender=doctor)


def test_a_grantee_cannot_plant_a_read_naming_himself_as_patient(network, records, consent, lab, patient, hospital,
                                                                   grant):
    """Break 4: a grantee who lists the real record in his own batch with himself as patient gets his
    own id; every AccessRequested for the real record names the real patient."""


    grant(lab, scopes=LAB_SCOPE, access=ACCESS_AMEND)
    real = make_batch(lab.address, patient.address, [LAB_SCOPE])
    records.anchorBatch(*real.anchor_args(), sender=lab)
    grant(hospital, scopes=LAB_SCOPE)
    records.registerPatient(sender=hospital)
    leaf = real.leaves[0]
    fake = make_batch(hospital.address, hospital.address, [LAB_SCOPE], hashes=[leaf.content_hash], cids=[leaf.cid])
    records.anchorBatch(*fake.anchor_args(), sender=hospital)
    planted = consent.requestBatchedAccess(fake.ref(0), sender=hospital).events.filter(consent.AccessRequested)[0]
    assert planted.recordId == fake.record_id(0) != real.record_id(0)
    # forging the real id into his own batch does not verify
    with ape.reverts(records.RecordInvalidProof):
        consent.requestBatchedAccess(real.ref(0, author=hospital.address, patient=hospital.address), sender=hospital)
    genuine = consent.requestBatchedAccess(real.ref(0), sender=hospital).events.filter(consent.AccessRequested)[0]
    assert (genuine.recordId, genuine.patient) == (real.record_id(0), patient.address)


def test_direct_revoke_voids_a_signed_grant_not_yet_relayed(network, consent, patient, doctor, hospital, grant, chain):
    grant(doctor)
    signed = _signed_grant(consent, chain, patient, doctor, scopes=LAB_SCOPE | MENTAL_SCOPE)
    consent.revoke(doctor, sender=patient)
    with ape.reverts(consent.ConsentInvalidSignature, patient=patient.address):
        consent.grantBySig(*signed, sender=hospital)
    assert not consent.canRead(patient, doctor, LAB_SCOPE)


def test_direct_grant_voids_an_earlier_signed_grant(network, consent, patient, doctor, hospital, chain):
    signed = _signed_grant(consent, chain, patient, doctor, scopes=LAB_SCOPE | MENTAL_SCOPE)
    consent.grant(doctor, LAB_SCOPE, ACCESS_READ, chain.pending_timestamp + DAY, PURPOSE, sender=patient)
    with ape.reverts(consent.ConsentInvalidSignature, patient=patient.address):
        consent.grantBySig(*signed, sender=hospital)
    assert not consent.canRead(patient, doctor, MENTAL_SCOPE)


def test_cancel_signatures_voids_them_when_there_is_no_grant(network, consent, patient, doctor, hospital, chain):
    signed = _signed_grant(consent, chain, patient, doctor)
    tx = consent.cancelSignatures(doctor, sender=patient)
    event = tx.events.filter(consent.SignaturesCancelled)[0]
    assert (event.patient, event.grantee, event.nonce) == (patient.address, doctor.address, 1)
    with ape.reverts(consent.ConsentInvalidSignature, patient=patient.address):
        consent.grantBySig(*signed, sender=hospital)


def test_signed_grant_with_unchanged_terms_still_uses_its_nonce(network, consent, patient, doctor, chain):
    signed = _signed_grant(consent, chain, patient, doctor)
    consent.grantBySig(*signed, sender=patient)
    consent.grant(doctor, LAB_SCOPE, ACCESS_READ, signed[5], PURPOSE, sender=patient)  # same terms: no event, but the nonce moves
    with ape.reverts(consent.ConsentInvalidSignature, patient=patient.address):
        consent.grantBySig(*signed, sender=patient)
