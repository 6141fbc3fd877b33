"""Attacks on claims, acted out as the attacker would: each gives a typed error whose message names
no claim content, and leaves the chain as it was (no commitment set or changed, no ClaimProven)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest

from ehr_client.claims import Claims, ClaimProof, Predicate
from ehr_client.claims.prover import Groth16Proof
from ehr_client.errors import (
    AccessDenied,
    ClaimNotAvailable,
    ClaimProofRejected,
    ClaimUnsatisfied,
    EHRError,
    MalformedProof,
    TransactionReverted,
)
from ehr_client.claims.extract import extract_claim
from ehr_client.claims.prover import prove
from ehr_client.claims.service import NO_CHALLENGE, claim_salt
from ehr_client.client.keysource import check_header, own_data_key
from ehr_client.crypto import claim_secret
from ehr_client.package import parse_header
from ehr_client.records import Scope
from tests.claims.conftest import HBA1C, hba1c

LAB_ONLY = int(Scope.LAB)

ASKED = f"type = Observation and code = {HBA1C} and unit = % and value < 6.5"
SECRETS = ("5.87", "5870", "6.13", "6130", "2026-03-02", "20260302", "2026-04-02")


@pytest.fixture(scope="module")
def two(world: dict[str, Claims]) -> tuple[Any, Any]:
    patient = world["patient"].client.address
    return (world["lab"].add_record(patient, hba1c(5.87)), world["lab"].add_record(patient, hba1c(6.13, "2026-04-02")))


@pytest.fixture(scope="module")
def proof(world: dict[str, Claims], two: tuple[Any, Any]) -> ClaimProof:
    return world["patient"].prove(two[0].record.record_id, ASKED, verifier=world["insurer"].client.address)


def _reveals_nothing(error: BaseException) -> None:
    assert isinstance(error, EHRError)
    assert not any(secret in str(error) for secret in SECRETS)


def _rejected(insurer: Claims, proof: ClaimProof, events: Callable[[str], list[Any]], *, sent: bool = True) -> None:
    """Rejected by the view call and, sent by the insurer, by the transaction; nothing emitted."""
    with pytest.raises(ClaimProofRejected) as view:
        insurer.check(proof)
    _reveals_nothing(view.value)
    if not sent:  # the transaction names its sender as verifier: nothing to replace there
        return
    with pytest.raises(ClaimProofRejected) as tx:
        insurer.registry.record(insurer.client.identity.account, proof.record_id, proof.challenge, proof.predicate,
                                proof.proof)
    _reveals_nothing(tx.value)
    assert events("ClaimProven") == []


def test_proof_moved_to_another_record_is_rejected(world: dict[str, Claims], two: tuple[Any, Any],
                                                   proof: ClaimProof, events: Callable[[str], list[Any]]) -> None:
    _rejected(world["insurer"], dataclasses.replace(proof, record_id=two[1].record.record_id), events)


def test_proof_used_by_another_verifier_is_rejected(world: dict[str, Claims], proof: ClaimProof,
                                                    events: Callable[[str], list[Any]]) -> None:
    stranger = world["stranger"]
    with pytest.raises(ClaimProofRejected):
        stranger.record_check(proof)
    with pytest.raises(ClaimProofRejected):  # the raw call, as a stranger would send it
        stranger.registry.record(stranger.client.identity.account, proof.record_id, proof.challenge, proof.predicate,
                                 proof.proof)
    _rejected(world["insurer"], dataclasses.replace(proof, verifier=stranger.client.address), events, sent=False)


def test_proof_with_another_challenge_is_rejected(world: dict[str, Claims], proof: ClaimProof,
                                                  events: Callable[[str], list[Any]]) -> None:
    _rejected(world["insurer"], dataclasses.replace(proof, challenge=b"\x01" * 32), events)


def test_tampered_public_inputs_and_points_are_rejected(world: dict[str, Claims], proof: ClaimProof,
                                                        events: Callable[[str], list[Any]]) -> None:
    widened = dataclasses.replace(proof.predicate, value_hi=proof.predicate.value_hi + 1000)
    _rejected(world["insurer"], dataclasses.replace(proof, predicate=widened), events)
    other_code = dataclasses.replace(proof.predicate, codes=("http://loinc.org|2345-7",))
    _rejected(world["insurer"], dataclasses.replace(proof, predicate=other_code), events)
    a, b, c = proof.proof.a, proof.proof.b, proof.proof.c
    _rejected(world["insurer"], dataclasses.replace(proof, proof=Groth16Proof(c, b, a)), events)
    _rejected(world["insurer"], dataclasses.replace(proof, proof=Groth16Proof((a[0], a[1] + 1), b, c)), events)


def test_proof_of_another_predicate_than_asked_is_refused(world: dict[str, Claims], proof: ClaimProof) -> None:
    with pytest.raises(ClaimProofRejected) as caught:
        world["insurer"].check(proof, expected=Predicate.parse(ASKED.replace("6.5", "6.0")))
    _reveals_nothing(caught.value)


def test_proof_about_a_tombstoned_record_is_rejected(world: dict[str, Claims], two: tuple[Any, Any],
                                                     proof: ClaimProof, events: Callable[[str], list[Any]]) -> None:
    patient = world["patient"]
    patient.client.tombstone(patient.client.get_record(two[0].record.record_id))
    _rejected(world["insurer"], proof, events)
    with pytest.raises(ClaimNotAvailable):
        patient.prove(two[0].record.record_id, ASKED, verifier=world["insurer"].client.address)


def test_proof_about_a_superseded_record_is_rejected(world: dict[str, Claims], two: tuple[Any, Any],
                                                     proof: ClaimProof, events: Callable[[str], list[Any]]) -> None:
    amended = world["lab"].amend_record(two[0].record.record_id, hba1c(5.8))
    _rejected(world["insurer"], proof, events)
    assert amended.commit is not None  # the current version has its own claim, and proofs about it hold
    current = world["patient"].prove(amended.record.record_id, ASKED, verifier=world["insurer"].client.address)
    assert world["insurer"].check(current).patient == world["patient"].client.address


def test_prover_refuses_a_predicate_the_claim_does_not_satisfy(world: dict[str, Claims],
                                                               two: tuple[Any, Any]) -> None:
    for predicate in (ASKED.replace("6.5", "5.0"), f"type = Observation and code = {HBA1C}|x",
                      "type = Observation and date >= 2026-06-01", "type = Patient and age >= 18 at 2026-11-30",
                      f"code = http://loinc.org|2345-7 and unit = % and value < 9"):
        with pytest.raises((ClaimUnsatisfied, ValueError)) as caught:
            world["patient"].prove(two[0].record.record_id, predicate, verifier=world["insurer"].client.address)
        assert not any(secret in str(caught.value) for secret in SECRETS)


def test_patient_cannot_commit_a_self_declared_claim(world: dict[str, Claims],
                                                     events: Callable[[str], list[Any]]) -> None:
    patient = world["patient"]
    with pytest.raises(AccessDenied) as caught:
        patient.add_record(patient.client.address, hba1c(4.2, "2026-05-01"))
    _reveals_nothing(caught.value)
    written = patient.client.add_record(patient.client.address, hba1c(4.2, "2026-05-01"))  # the record stands
    assert patient.registry.commitment_of(written.record_id) == 0
    assert [e for e in events("ClaimsCommitted") if bytes(e.args.recordId) == written.record_id] == []


def test_member_without_write_rights_cannot_commit(world: dict[str, Claims]) -> None:
    hospital, patient = world["hospital"], world["patient"]
    written = hospital.client.add_record(patient.client.address, hba1c(5.5, "2026-02-01"))
    patient.client.revoke(hospital.client.address)
    with pytest.raises(AccessDenied) as caught:
        hospital.commit(written)
    _reveals_nothing(caught.value)
    assert hospital.registry.commitment_of(written.record_id) == 0


def test_non_member_cannot_commit_for_any_record(world: dict[str, Claims], two: tuple[Any, Any]) -> None:
    stranger = world["stranger"]
    salt = two[0].record.salt  # the lab's salt: the stranger's id from it is another (unused) id
    with pytest.raises(TransactionReverted) as caught:
        stranger.registry.commit(stranger.client.identity.account, salt, 12345)
    assert caught.value.error_name == "ClaimRecordNotFound"
    assert stranger.registry.commitment_of(two[0].record.record_id) != 12345


def test_a_commitment_never_changes(world: dict[str, Claims], two: tuple[Any, Any]) -> None:
    lab = world["lab"]
    before = lab.registry.commitment_of(two[0].record.record_id)
    with pytest.raises(TransactionReverted) as caught:
        lab.registry.commit(lab.client.identity.account, two[0].record.salt, 12345)
    assert caught.value.error_name == "ClaimAlreadyCommitted"
    assert lab.registry.commitment_of(two[0].record.record_id) == before


def test_malformed_proof_files_are_refused(proof: ClaimProof) -> None:
    good = json.loads(proof.to_json())
    variants: list[Any] = ["", "{", "[]", "null", json.dumps({**good, "format": "other/1"}),
                           json.dumps({k: v for k, v in good.items() if k != "proof"}),
                           json.dumps({**good, "extra": 1}), json.dumps({**good, "recordId": "0x1234"}),
                           json.dumps({**good, "verifier": "not-an-address"}),
                           json.dumps({**good, "chainId": "1"}), json.dumps({**good, "proof": {**good["proof"], "a": [1, 2]}}),
                           json.dumps({**good, "proof": {**good["proof"], "b": [["1"]]}}),
                           json.dumps({**good, "predicate": {**good["predicate"], "valueLo": -1}}),
                           json.dumps({**good, "predicate": {**good["predicate"], "type": "Spaceship"}}),
                           "[" * 100_000, "x" * 20_000, b"\xff\xfe"]
    for text in variants:
        with pytest.raises(MalformedProof):
            ClaimProof.from_json(text)


def test_proof_for_another_chain_is_rejected(world: dict[str, Claims], proof: ClaimProof) -> None:
    with pytest.raises(ClaimProofRejected):
        world["insurer"].check(dataclasses.replace(proof, chain_id=proof.chain_id + 1))


def test_suspended_author_cannot_commit(world: dict[str, Claims], claims_for: Callable[[str], Claims]) -> None:
    lab, patient = world["lab"], world["patient"]
    written = lab.client.add_record(patient.client.address, hba1c(5.4, "2026-02-03"))
    governor = claims_for("gov_a").client
    governor.chain.transact(governor.identity.account, governor.chain.consortium.functions.suspend(lab.client.address),
                            action="suspend")
    with pytest.raises(AccessDenied):
        lab.commit(written)
    assert lab.registry.commitment_of(written.record_id) == 0


def test_a_crash_between_write_and_commit_is_finished_by_writing_again(world: dict[str, Claims]) -> None:
    lab, patient = world["lab"], world["patient"]
    written = lab.client.add_record(patient.client.address, hba1c(5.6, "2026-02-04"))  # then the process dies
    assert lab.registry.commitment_of(written.record_id) == 0
    again = lab.add_record(patient.client.address, hba1c(5.6, "2026-02-04"))
    assert again.record.record_id == written.record_id and again.record.tx is None and again.commit is not None
    proof = patient.prove(written.record_id, ASKED, verifier=world["insurer"].client.address)
    assert world["insurer"].check(proof).patient == patient.client.address


def test_a_provider_cannot_attest_a_claim_about_itself(world: dict[str, Claims]) -> None:
    hospital = world["hospital"]
    hospital.client.register_patient()
    with pytest.raises(AccessDenied) as caught:
        hospital.add_record(hospital.client.address, hba1c(5.1, "2026-02-05"))
    _reveals_nothing(caught.value)


def test_a_claim_the_records_category_cannot_attest_is_refused_on_chain(world: dict[str, Claims]) -> None:
    """A lab trusted for LAB files a Patient resource under LAB and commits to its birth date by hand
    (its own client commits nothing for it); a proof of the age is then refused by the chain."""
    lab, patient, insurer = world["lab"], world["patient"], world["insurer"]
    person = {"resourceType": "Patient", "birthDate": "1990-01-01"}
    written = lab.add_record(patient.client.address, person, scope=LAB_ONLY)
    assert written.commit is None and lab.registry.commitment_of(written.record.record_id) == 0
    claim = extract_claim(person)
    assert claim is not None
    salt = claim_salt(claim_secret(_own_key(lab, written.record.record_id), written.record.record_id))
    commitment = claim.commitment(written.record.record_id, salt)
    lab.registry.commit(lab.client.identity.account, written.record.salt, commitment)  # the chain lets it commit
    predicate = Predicate.parse("type = Patient and age >= 18 at 2026-11-30", kind=claim.kind)
    binding = lab.registry.binding_of(insurer.client.address, NO_CHALLENGE)
    proof = prove(lab.setup, claim, salt, written.record.record_id, commitment, binding, predicate)
    forged = ClaimProof(lab.client.chain.chain_id, lab.registry.address, written.record.record_id,
                        insurer.client.address, NO_CHALLENGE, predicate, proof)
    with pytest.raises(ClaimProofRejected, match="category") as caught:
        insurer.record_check(forged)
    _reveals_nothing(caught.value)
    with pytest.raises(ClaimNotAvailable, match="category"):
        patient.prove(written.record.record_id, "type = Patient and age >= 18 at 2026-11-30",
                      verifier=insurer.client.address)


def _own_key(author: Claims, record_id: bytes) -> bytes:
    info = author.client.get_record(record_id)
    blob = author.client.fetch_verified(info, doing="opened")
    header, _ = parse_header(blob)
    key = own_data_key(author.client.identity, header, check_header(info, header))
    assert key is not None
    return key
