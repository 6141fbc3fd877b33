"""Claims of records anchored in a batch: the batch's author commits with each record's Merkle proof,
the patient proves, a verifier checks. Attacks on the batched path, acted out as the attacker would."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from ehr_client.batch.writer import BatchItem, BatchWriter
from ehr_client.claims import Claims, ClaimProof
from ehr_client.errors import AccessDenied, ClaimNotAvailable, ClaimProofRejected, ClaimUnsatisfied, IntegrityError
from tests.claims.conftest import HBA1C, hba1c

ASKED = f"type = Observation and code = {HBA1C} and unit = % and value < 6.5"


def _batch(author: Claims, patient: str, *values: float) -> list[bytes]:
    """Records of `author` about `patient` anchored in one batch (values unique per test: ids and
    blobs derive from content, and the chain is shared across the session)."""
    summary = BatchWriter(author.client).write(BatchItem(patient, hba1c(value)) for value in values)
    return list(summary.record_ids)


@pytest.fixture(scope="module")
def batched(world: dict[str, Claims]) -> list[bytes]:
    lab, patient = world["lab"], world["patient"].client.address
    ids = _batch(lab, patient, 5.61, 6.71, 5.62)
    sent = lab.commit_batched(ids)
    assert len(sent) == 3
    return ids


@pytest.fixture(scope="module")
def proof(world: dict[str, Claims], batched: list[bytes]) -> ClaimProof:
    return world["patient"].prove(batched[0], ASKED, verifier=world["insurer"].client.address)


def _proven(events: Callable[[str], list[Any]], record_id: bytes) -> list[Any]:
    return [e for e in events("ClaimProven") if bytes(e.args.recordId) == record_id]


def test_a_batched_lab_result_is_committed_proven_and_checked(world: dict[str, Claims], batched: list[bytes],
                                                              proof: ClaimProof,
                                                              events: Callable[[str], list[Any]]) -> None:
    lab, insurer, patient = world["lab"], world["insurer"], world["patient"]
    assert all(lab.registry.commitment_of(record_id) != 0 for record_id in batched)
    assert lab.client.get_record(batched[0]).batch is not None  # never stored alone in the registry
    assert insurer.check(proof).patient == patient.client.address
    insurer.record_check(proof)
    assert len(_proven(events, batched[0])) == 1
    with pytest.raises(ClaimUnsatisfied) as unsatisfied:  # 6.71 is not below 6.5: the prover refuses
        patient.prove(batched[1], ASKED, verifier=insurer.client.address)
    assert "6.71" not in str(unsatisfied.value)
    assert lab.commit_batched(batched) == []  # run again: nothing missing, nothing sent


def test_another_member_cannot_commit_for_a_batch_it_did_not_anchor(world: dict[str, Claims]) -> None:
    lab, hospital, patient = world["lab"], world["hospital"], world["patient"].client.address
    ids = _batch(lab, patient, 5.63)
    batch = lab.client.get_record(ids[0]).batch
    assert batch is not None
    with pytest.raises(AccessDenied):  # the client refuses first
        hospital.commit_batched(ids)
    with pytest.raises(AccessDenied):  # and the chain, sent raw by the hospital (which may write LAB)
        hospital.registry.commit_batched(hospital.client.identity.account, batch, 12345)
    assert lab.registry.commitment_of(ids[0]) == 0
    assert len(lab.commit_batched(ids)) == 1  # the true author still can


def test_a_forged_batch_proof_commits_nothing(world: dict[str, Claims]) -> None:
    lab, patient = world["lab"], world["patient"].client.address
    ids = _batch(lab, patient, 5.64, 5.65)
    batch = lab.client.get_record(ids[0]).batch
    assert batch is not None
    for forged in (dataclasses.replace(batch, content_hash=bytes(32)), dataclasses.replace(batch, index=1),
                   dataclasses.replace(batch, scope=batch.scope << 1)):
        with pytest.raises(IntegrityError, match="proof or the leaf was altered"):
            lab.registry.commit_batched(lab.client.identity.account, forged, 12345)
    assert [lab.registry.commitment_of(record_id) for record_id in ids] == [0, 0]


def test_proofs_about_an_erased_batched_record_stop_counting(world: dict[str, Claims], batched: list[bytes],
                                                             events: Callable[[str], list[Any]]) -> None:
    patient, insurer = world["patient"], world["insurer"]
    proof = patient.prove(batched[2], ASKED, verifier=insurer.client.address)
    assert insurer.check(proof).patient == patient.client.address
    patient.client.tombstone(patient.client.get_record(batched[2]))
    with pytest.raises(ClaimProofRejected):
        insurer.check(proof)
    with pytest.raises(ClaimProofRejected):
        insurer.record_check(proof)
    assert _proven(events, batched[2]) == []
    with pytest.raises(ClaimNotAvailable):
        patient.prove(batched[2], ASKED, verifier=insurer.client.address)


def test_a_patient_cannot_self_attest_a_batched_record(world: dict[str, Claims]) -> None:
    patient = world["patient"]
    ids = _batch(patient, patient.client.address, 4.31)
    assert patient.commit_batched(ids) == []  # the client sends nothing for one's own records
    batch = patient.client.get_record(ids[0]).batch
    assert batch is not None
    with pytest.raises(AccessDenied):  # the chain refuses the raw call
        patient.registry.commit_batched(patient.client.identity.account, batch, 12345)
    assert patient.registry.commitment_of(ids[0]) == 0


def test_a_single_record_is_not_committed_as_batched(world: dict[str, Claims]) -> None:
    lab, patient = world["lab"], world["patient"].client.address
    written = lab.client.add_record(patient, hba1c(5.66))
    with pytest.raises(ClaimNotAvailable):
        lab.commit_batched([written.record_id])
    assert lab.registry.commitment_of(written.record_id) == 0


def test_proofs_about_an_amended_batched_record_stop_counting(world: dict[str, Claims], batched: list[bytes],
                                                              events: Callable[[str], list[Any]]) -> None:
    lab, patient, insurer = world["lab"], world["patient"], world["insurer"]
    below_seven = ASKED.replace("6.5", "7")
    proof = patient.prove(batched[1], below_seven, verifier=insurer.client.address)
    amended = lab.amend_record(batched[1], hba1c(5.68))
    with pytest.raises(ClaimProofRejected):
        insurer.check(proof)
    assert _proven(events, batched[1]) == []
    assert amended.commit is not None  # the new version is a single record with its own claim
    current = patient.prove(amended.record.record_id, ASKED, verifier=insurer.client.address)
    assert insurer.check(current).patient == patient.client.address
