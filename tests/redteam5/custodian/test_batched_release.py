"""Custodians releasing the keys of batched records sealed under one ephemeral key per reader: the
custodians find the record from the chain by its id and re-encrypt its own Umbral capsule."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ehr_client.batch import BatchItem
from ehr_client.batch.writer import BatchWriter
from ehr_client.custodian.errors import KeyReleaseDenied
from ehr_client.records import Scope, canonicalize
from tests.batch.conftest import observation
from tests.constants import DAY
from tests.custodian.conftest import Env, CustodianProcess


def test_a_grantee_reads_every_record_of_a_batch_through_custodians_and_no_other(
        env: Env, running: list[CustodianProcess]) -> None:
    patient, lab = env.clients["patient"], env.clients["lab"]
    lab_scope = int(Scope.LAB)
    patient.grant(lab.address, lab_scope, access="amend", expires_at=patient.chain.now() + DAY, share_keys=False)
    items = [BatchItem(patient.address, observation(100 + i)) for i in range(3)]
    record_ids = BatchWriter(lab, batch_size=3).write(items).record_ids
    delegated = env.sharing("patient").delegate(env.clients["doctor"].address, record_ids=list(record_ids[:2]))
    assert sorted(delegated.record_ids) == sorted(record_ids[:2])
    patient.grant(env.clients["doctor"].address, lab_scope, expires_at=patient.chain.now() + DAY, share_keys=False)

    doctor = env.sharing("doctor")
    read = [doctor.read_record(record_id).data for record_id in record_ids[:2]]
    assert read == [canonicalize(observation(100)), canonicalize(observation(101))]
    with pytest.raises(KeyReleaseDenied):
        doctor.read_record(record_ids[2])  # their sibling, sealed under the same ephemeral keys, was not delegated


def _refusal(read: Callable[[], object]) -> str:
    with pytest.raises(KeyReleaseDenied) as refused:
        read()
    return str(refused.value)


def test_custodians_refuse_an_undelegated_batched_record_for_what_it_is(
        env: Env, running: list[CustodianProcess]) -> None:
    """Failed on cfd5c32 (custodians answered record-unknown, ChainChecks.record looked a batched record up only with a
    named patient); main's 4e4d4f8 fixed it."""
    patient, lab = env.clients["patient"], env.clients["lab"]
    lab_scope = int(Scope.LAB)
    patient.grant(lab.address, lab_scope, access="amend", expires_at=patient.chain.now() + DAY, share_keys=False)
    patient.grant(env.clients["doctor"].address, lab_scope, expires_at=patient.chain.now() + DAY, share_keys=False)
    (batched,) = BatchWriter(lab, batch_size=1).write([BatchItem(patient.address, observation(200))]).record_ids
    single = lab.add_record(patient.address, observation(201)).record_id

    doctor = env.sharing("doctor")
    single_refusal = _refusal(lambda: doctor.read_record(single))
    batched_refusal = _refusal(lambda: doctor.read_record(batched))
    assert "record-unknown" not in batched_refusal, (batched_refusal, single_refusal)
