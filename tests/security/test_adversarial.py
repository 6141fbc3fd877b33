"""Attacks on consent: replay, front-running, privilege escalation, acting for someone else,
and state growth that would make a call cost more over time.

Already covered elsewhere and not repeated here (see SECURITY.md): a signature for chain id + 1,
for another deployment on the same chain, replayed twice, with a stale nonce, past its deadline,
with an altered field, forged by a member (tests/contracts/test_consent_manager.py); a read grant
cannot write (tests/contracts/test_record_registry.py::test_read_grant_does_not_allow_writing).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ape
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ehr_client.chain.ids import record_id_of
from ehr_client.chain.client import ChainClient
from ehr_client.chain.eip712 import Domain, deployed_domain, grant_typed_data, revoke_typed_data, sign_typed_data
from ehr_client.errors import SignatureError, TransactionReverted
from ehr_client.dev.node import AnvilNode
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
    ROLE,
)
from tests.security.suite import LocalSuite, deploy_local_suite, signer_of

HOUR = 3600
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
CID = b"\x01\x55\x12\x20" + b"\xab" * 32


def _domain(chain: ChainClient) -> Domain:
    return deployed_domain(chain.consent, lambda fn: chain.call(fn, action="read domain"))


def _sign_grant(domain: Domain, patient: LocalAccount, grantee: str, *, nonce: int, expires: int,
                deadline: int, scopes: int = LAB_SCOPE, access: int = ACCESS_READ) -> bytes:
    typed = grant_typed_data(domain, patient=patient.address, grantee=grantee, scopes=scopes,
                             may_amend=access == ACCESS_AMEND, purpose=PURPOSE, grant_ends_at=expires, nonce=nonce,
                             signature_valid_until=deadline)
    return sign_typed_data(patient.key, typed)


# --- replay across two real chains -------------------------------------------------------------


@pytest.fixture(scope="module")
def two_chains(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalSuite, LocalSuite]]:
    """The same suite, deployed by the same account at the same nonces, on chain ids 5151 and 5152."""
    logs = tmp_path_factory.mktemp("two-chains")
    with AnvilNode(log_path=logs / "a.log", chain_id=5151) as a, AnvilNode(log_path=logs / "b.log", chain_id=5152) as b:
        yield deploy_local_suite(a.rpc_url), deploy_local_suite(b.rpc_url)


def test_signature_for_one_chain_is_refused_on_another_with_identical_addresses(
    two_chains: tuple[LocalSuite, LocalSuite],
) -> None:
    chain_a, chain_b = two_chains
    assert chain_a.deployment.contracts == chain_b.deployment.contracts  # only the chain id tells them apart
    patient, doctor, relayer = (chain_a.accounts[n] for n in ("patient", "doctor", "hospital"))
    now = chain_a.chain.now()
    assert _domain(chain_a.chain).chain_id == 5151
    signature = _sign_grant(_domain(chain_a.chain), patient, doctor.address, nonce=0, expires=now + DAY,
                            deadline=now + HOUR)
    args = (patient.address, doctor.address, LAB_SCOPE, False, PURPOSE, now + DAY, now + HOUR, signature)

    with pytest.raises(SignatureError, match="another deployment"):
        chain_b.chain.transact(relayer, chain_b.chain.consent.functions.grantBySig(*args), action="relay grant")
    assert chain_b.chain.call(chain_b.chain.consent.functions.nonces(patient.address, doctor.address), action="n") == 0

    chain_a.chain.transact(relayer, chain_a.chain.consent.functions.grantBySig(*args), action="relay grant")
    read = chain_a.chain.consent.functions.canRead(patient.address, doctor.address, LAB_SCOPE)
    assert chain_a.chain.call(read, action="canRead")
    assert not chain_b.chain.call(chain_b.chain.consent.functions.canRead(patient.address, doctor.address, LAB_SCOPE),
                                  action="canRead")
    # and once used on chain A, the same signature is dead there too
    with pytest.raises(SignatureError):
        chain_a.chain.transact(relayer, chain_a.chain.consent.functions.grantBySig(*args), action="relay grant")


def test_signed_revocation_for_one_chain_is_refused_on_another(two_chains: tuple[LocalSuite, LocalSuite]) -> None:
    chain_a, chain_b = two_chains
    patient, lab, relayer = (chain_b.accounts[n] for n in ("patient", "lab", "hospital"))
    for suite in (chain_a, chain_b):
        suite.chain.transact(patient, suite.chain.consent.functions.grant(lab.address, LAB_SCOPE, ACCESS_READ,
                                                                          suite.chain.now() + DAY, PURPOSE), action="grant")
    deadline = chain_a.chain.now() + HOUR
    nonce = chain_a.chain.call(chain_a.chain.consent.functions.nonces(patient.address, lab.address), action="n")
    typed = revoke_typed_data(_domain(chain_a.chain), patient=patient.address, grantee=lab.address, nonce=nonce,
                              signature_valid_until=deadline)
    signature = sign_typed_data(patient.key, typed)
    with pytest.raises(SignatureError):
        chain_b.chain.transact(relayer, chain_b.chain.consent.functions.revokeBySig(
            patient.address, lab.address, nonce, deadline, signature), action="relay revoke")
    assert chain_b.chain.call(chain_b.chain.consent.functions.canRead(patient.address, lab.address, LAB_SCOPE),
                              action="canRead")


# --- front-running a relayed grant ---------------------------------------------------------------


def _signed_args(consent: Any, chain: Any, patient: Any, grantee: Any, **terms: int) -> tuple[Any, ...]:
    expires, deadline = chain.pending_timestamp + DAY, chain.pending_timestamp + HOUR
    scopes, access = terms.get("scopes", LAB_SCOPE), terms.get("access", ACCESS_READ)
    domain = Domain(CONSENT_DOMAIN_NAME, chain.chain_id, consent.address)
    signature = _sign_grant(domain, Account.from_key(patient.private_key), grantee.address,
                            nonce=consent.nonces(patient, grantee), expires=expires, deadline=deadline,
                            scopes=scopes, access=access)
    return patient.address, grantee.address, scopes, access == ACCESS_AMEND, PURPOSE, expires, deadline, signature


def test_front_runner_who_relays_first_can_only_apply_the_exact_signed_terms(
    network: Any, consent: Any, patient: Any, doctor: Any, hospital: Any, stranger: Any, chain: Any,
) -> None:
    args = _signed_args(consent, chain, patient, doctor)
    # an outsider copies the signature from the mempool and submits it first
    tx = consent.grantBySig(*args, sender=stranger)
    event = tx.events.filter(consent.AccessGranted)[0]
    assert (event.patient, event.grantee, event.scopes, event.access, event.expiresAt) == (
        patient.address, doctor.address, LAB_SCOPE, ACCESS_READ, args[5])
    assert (consent.getGrant(patient, doctor).scopes, consent.getGrant(patient, doctor).access) == (LAB_SCOPE, 1)
    # the intended relayer's transaction now fails, and nothing changes
    with ape.reverts(consent.ConsentInvalidSignature, patient=patient.address):
        consent.grantBySig(*args, sender=hospital)
    assert consent.nonces(patient, doctor) == 1


def test_front_runner_cannot_change_the_deadline_of_a_signed_grant(
    network: Any, consent: Any, patient: Any, doctor: Any, hospital: Any, chain: Any,
) -> None:
    p, g, scopes, amend, purpose, expires, deadline, sig = _signed_args(consent, chain, patient, doctor)
    with ape.reverts(consent.ConsentInvalidSignature, patient=patient.address):
        consent.grantBySig(p, g, scopes, amend, purpose, expires, deadline + DAY, sig, sender=hospital)
    assert consent.nonces(patient, doctor) == 0  # the genuine signature is still usable once
    consent.grantBySig(p, g, scopes, amend, purpose, expires, deadline, sig, sender=hospital)


def test_front_runner_cannot_redirect_a_signed_revocation(
    network: Any, consent: Any, patient: Any, doctor: Any, lab: Any, hospital: Any, grant: Any, chain: Any,
) -> None:
    grant(doctor)
    grant(lab)
    deadline = chain.pending_timestamp + HOUR
    nonce = consent.nonces(patient, doctor)
    typed = revoke_typed_data(Domain(CONSENT_DOMAIN_NAME, chain.chain_id, consent.address), patient=patient.address,
                              grantee=doctor.address, nonce=nonce, signature_valid_until=deadline)
    signature = sign_typed_data(patient.private_key, typed)
    with ape.reverts(consent.ConsentInvalidSignature, patient=patient.address):
        consent.revokeBySig(patient, lab, nonce, deadline, signature, sender=hospital)
    assert consent.canRead(patient, lab, LAB_SCOPE) and consent.canRead(patient, doctor, LAB_SCOPE)


# --- a grantee escalating read to amend ------------------------------------------------------------


def test_read_grantee_cannot_amend_erase_or_upgrade_its_own_grant(
    network: Any, consent: Any, records: Any, patient: Any, hospital: Any, doctor: Any, grant: Any,
    add_record: Any, chain: Any,
) -> None:
    record_id = add_record(scope=LAB_SCOPE)
    grant(hospital, scopes=LAB_SCOPE, access=ACCESS_READ)
    with ape.reverts(records.RecordUnauthorizedAuthor, author=hospital.address, patient=patient.address,
                     scope=LAB_SCOPE):
        records.amendRecord(record_id, (991).to_bytes(32, "big"), b"\x01" * 32, CID, sender=hospital)
    with ape.reverts(records.RecordNotPatient, caller=hospital.address, recordId=record_id):
        records.tombstone(record_id, sender=hospital)
    # `grant` always grants from the caller's own records: the hospital cannot touch the patient's
    consent.grant(doctor, LAB_SCOPE, ACCESS_AMEND, chain.pending_timestamp + DAY, PURPOSE, sender=hospital)
    assert consent.getGrant(patient, hospital).access == ACCESS_READ
    assert not consent.canAmend(patient, hospital, LAB_SCOPE)
    assert not consent.canRead(patient, doctor, LAB_SCOPE)
    assert records.getRecord(record_id).status == 1


def test_amend_grantee_cannot_write_outside_its_scopes(
    network: Any, records: Any, patient: Any, lab: Any, grant: Any, add_record: Any,
) -> None:
    mental = add_record(scope=MENTAL_SCOPE)
    grant(lab, scopes=LAB_SCOPE | CONDITION_SCOPE, access=ACCESS_AMEND)
    with ape.reverts(records.RecordUnauthorizedAuthor, author=lab.address, patient=patient.address,
                     scope=MENTAL_SCOPE):
        records.amendRecord(mental, (992).to_bytes(32, "big"), b"\x01" * 32, CID, sender=lab)


# --- a member acting on a patient's behalf ---------------------------------------------------------


def test_member_cannot_revoke_or_grant_for_a_patient_without_the_patients_key(
    network: Any, consent: Any, consortium: Any, patient: Any, hospital: Any, doctor: Any, governor: Any,
    grant: Any, chain: Any,
) -> None:
    grant(doctor)
    deadline = chain.pending_timestamp + HOUR
    typed = revoke_typed_data(Domain(CONSENT_DOMAIN_NAME, chain.chain_id, consent.address), patient=patient.address,
                              grantee=doctor.address, nonce=0, signature_valid_until=deadline)
    forged = sign_typed_data(hospital.private_key, typed)
    with ape.reverts(consent.ConsentInvalidSignature, patient=patient.address):
        consent.revokeBySig(patient, doctor, 0, deadline, forged, sender=hospital)
    # a governor has no path either: its grant lands in its own namespace
    consent.grant(hospital, MENTAL_SCOPE, ACCESS_READ, chain.pending_timestamp + DAY, PURPOSE, sender=governor)
    assert not consent.canRead(patient, hospital, MENTAL_SCOPE)
    assert consent.canRead(patient, doctor, LAB_SCOPE)


def test_malformed_signatures_are_refused_not_crashing(
    network: Any, consent: Any, patient: Any, doctor: Any, hospital: Any, chain: Any,
) -> None:
    p, g, scopes, amend, purpose, expires, deadline, sig = _signed_args(consent, chain, patient, doctor)
    # the same signature in its malleable form (s -> n - s, v flipped): valid ECDSA, refused by OZ
    high_s = sig[:32] + (SECP256K1_N - int.from_bytes(sig[32:64], "big")).to_bytes(32, "big") + bytes([55 - sig[64]])
    for bad in (b"", sig[:64], sig + b"\x00", bytes(65), high_s):
        with ape.reverts(consent.ConsentInvalidSignature, patient=patient.address):
            consent.grantBySig(p, g, scopes, amend, purpose, expires, deadline, bad, sender=hospital)
    zero = "0x0000000000000000000000000000000000000000"
    with ape.reverts(consent.ConsentInvalidSignature, patient=zero):
        consent.grantBySig(zero, g, scopes, amend, purpose, expires, deadline, bytes(65), sender=hospital)


# --- gas does not grow with the number of grants or records ---------------------------------------


TOLERANCE = 200


def _measure(chain: ChainClient, patient: LocalAccount, doctor: LocalAccount, record_id: bytes,
             expires: int) -> dict[str, int]:
    consent, records = chain.consent.functions, chain.records.functions
    gas = {"grant": chain.transact(patient, consent.grant(doctor.address, LAB_SCOPE, ACCESS_READ, expires, PURPOSE),
                                   action="grant").gas_used}
    gas["canRead"] = consent.canRead(patient.address, doctor.address, LAB_SCOPE).estimate_gas(
        {"from": doctor.address})
    gas["requestAccess"] = chain.transact(doctor, consent.requestAccess(record_id), action="read").gas_used
    gas["revoke"] = chain.transact(patient, consent.revoke(doctor.address), action="revoke").gas_used
    new_salt = (10**6).to_bytes(32, "big")
    gas["addRecord"] = chain.transact(patient, records.addRecord(new_salt, patient.address, b"\x02" * 32, LAB_SCOPE,
                                                                 CID), action="add").gas_used
    return gas


def test_gas_of_consent_and_record_calls_does_not_grow_with_state(
    suite_chain: ChainClient, network: Any, governors: list[Any], patient: Any, doctor: Any,
    chain: Any,
) -> None:
    me, reader = signer_of(patient), signer_of(doctor)
    gov_a, gov_b = signer_of(governors[0]), signer_of(governors[1])
    consent, records, consortium = (suite_chain.consent.functions, suite_chain.records.functions,
                                    suite_chain.consortium.functions)
    expires = suite_chain.now() + 30 * DAY
    grantees = [Account.create().address for _ in range(50)]

    def grow(count: int, start: int) -> None:
        """`count` more members the patient grants to, and `count` more records of the patient."""
        for i in range(start, start + count):
            result = suite_chain.transact(gov_a, consortium.propose(ACTION["admit"], grantees[i], ROLE["provider"],
                                                                    DAY), action="propose")
            proposal = suite_chain.events_in(result, "Consortium", "ProposalCreated")[0]["proposalId"]
            suite_chain.transact(gov_b, consortium.approve(proposal), action="approve")
            suite_chain.transact(gov_b, consortium.execute(proposal), action="execute")
            suite_chain.transact(me, consent.grant(grantees[i], LAB_SCOPE | MENTAL_SCOPE, ACCESS_READ, expires, PURPOSE),
                                 action="grant")
            suite_chain.transact(me, records.addRecord((i + 1).to_bytes(32, "big"), me.address, b"\x01" * 32,
                                                       LAB_SCOPE, CID), action="add")

    grow(1, 0)
    target = record_id_of(me.address, (1).to_bytes(32, "big"))
    before = chain.snapshot()
    small = _measure(suite_chain, me, reader, target, expires)
    chain.restore(before)
    grow(49, 1)
    large = _measure(suite_chain, me, reader, target, expires)
    print("\ngas with 1 vs 50 grants and records:", {k: (small[k], large[k]) for k in small})
    for name in small:
        assert abs(large[name] - small[name]) <= TOLERANCE, f"{name}: {small[name]} -> {large[name]} gas"


# --- F-1 (SECURITY.md, fixed): a patient's later decision voids signatures not yet relayed ---------


def test_grant_signed_before_a_direct_revoke_cannot_be_relayed_after_it(
    suite_chain: ChainClient, network: Any, patient: Any, doctor: Any, hospital: Any, grant: Any, chain: Any,
) -> None:
    grant(doctor)
    me, relayer = signer_of(patient), signer_of(hospital)
    consent = suite_chain.consent.functions
    now = suite_chain.now()
    # the patient signs an extension and hands it to the hospital, then changes her mind
    nonce = suite_chain.call(consent.nonces(me.address, doctor.address), action="nonce")
    signature = _sign_grant(_domain(suite_chain), me, doctor.address,
                            nonce=nonce, expires=now + 30 * DAY, deadline=now + HOUR)
    suite_chain.transact(me, consent.revoke(doctor.address), action="revoke")
    with pytest.raises(SignatureError):
        suite_chain.transact(relayer, consent.grantBySig(me.address, doctor.address, LAB_SCOPE, False, PURPOSE,
                                                         now + 30 * DAY, now + HOUR, signature), action="relay")
    assert not suite_chain.call(consent.canRead(me.address, doctor.address, LAB_SCOPE), action="canRead")


def test_patient_cancels_an_unrelayed_signed_grant_when_there_is_no_grant_to_revoke(
    suite_chain: ChainClient, network: Any, patient: Any, doctor: Any, hospital: Any,
) -> None:
    """With no grant yet, revoke and a signed revocation have nothing to revoke (ConsentNoGrant);
    cancelSignatures voids the issued signature instead."""
    me, relayer = signer_of(patient), signer_of(hospital)
    consent = suite_chain.consent.functions
    now = suite_chain.now()
    signature = _sign_grant(_domain(suite_chain), me, doctor.address,
                            nonce=0, expires=now + DAY, deadline=now + HOUR)
    with pytest.raises(TransactionReverted, match="no grant"):
        suite_chain.transact(me, consent.revoke(doctor.address), action="revoke")
    suite_chain.transact(me, consent.cancelSignatures(doctor.address), action="cancel signatures")
    with pytest.raises(SignatureError):
        suite_chain.transact(relayer, consent.grantBySig(me.address, doctor.address, LAB_SCOPE, False, PURPOSE,
                                                         now + DAY, now + HOUR, signature), action="relay")
    assert not suite_chain.call(consent.canRead(me.address, doctor.address, LAB_SCOPE), action="canRead")
