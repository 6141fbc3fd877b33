"""Attacks on claims of batched records that the system withstood (kept as regression tests)."""

from __future__ import annotations

import dataclasses

import pytest

from ehr_client.batch.writer import BatchItem, BatchWriter
from ehr_client.claims import Claims
from ehr_client.errors import EHRError, ClaimProofRejected
from tests.claims.conftest import WRITES, hba1c
from tests.constants import DAY

ASKED = "type = Observation and code = http://loinc.org|4548-4 and unit = % and value < 6.5"


def _batch(author: Claims, patient: str, *values: float) -> list[bytes]:
    return list(BatchWriter(author.client).write(BatchItem(patient, hba1c(v, "2026-07-01")) for v in values).record_ids)


def test_a_batch_commit_after_the_grant_is_revoked_is_refused(world: dict[str, Claims]) -> None:
    lab, patient = world["lab"], world["patient"]
    ids = _batch(lab, patient.client.address, 5.91)
    batch = lab.client.get_record(ids[0]).batch
    assert batch is not None
    patient.client.revoke(lab.client.address)
    try:
        with pytest.raises(EHRError):
            lab.commit_batched(ids)
        with pytest.raises(EHRError):
            lab.registry.commit_batched(lab.client.identity.account, batch, 777)
        assert lab.registry.commitment_of(ids[0]) == 0
    finally:
        patient.client.grant(lab.client.address, WRITES, access="amend", expires_at=patient.client.chain.now() + 30 * DAY,
                             share_keys=False)


def test_another_members_amendment_ends_proofs_and_a_proof_does_not_move_to_the_new_id(
        world: dict[str, Claims]) -> None:
    lab, hospital, patient, insurer = world["lab"], world["hospital"], world["patient"], world["insurer"]
    ids = _batch(lab, patient.client.address, 5.92)
    assert len(lab.commit_batched(ids)) == 1
    proof = patient.prove(ids[0], ASKED, verifier=insurer.client.address)
    insurer.check(proof)
    amended = hospital.amend_record(ids[0], hba1c(5.93, "2026-07-01"))  # hospital holds a LAB amend grant
    with pytest.raises(ClaimProofRejected):
        insurer.check(proof)
    assert amended.commit is not None
    moved = dataclasses.replace(proof, record_id=amended.record.record_id)
    with pytest.raises(ClaimProofRejected):
        insurer.check(moved)


def test_a_member_attesting_its_own_batch_as_patient_is_refused(world: dict[str, Claims]) -> None:
    hospital = world["hospital"]
    hospital.client.register_patient()
    ids = _batch(hospital, hospital.client.address, 4.11)
    batch = hospital.client.get_record(ids[0]).batch
    assert batch is not None
    with pytest.raises(EHRError):
        hospital.registry.commit_batched(hospital.client.identity.account, batch, 999)
    assert hospital.registry.commitment_of(ids[0]) == 0
