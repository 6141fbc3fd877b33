"""An erasure killed after its tombstone was mined and before the blob was unpinned (kill -9, a hung
store, a full disk): the record is tombstoned, its ciphertext is still stored. `ehr storage gc` is the
safety net for what a crash leaves behind, but it keeps that blob for good: the chain's `RecordAdded`
still points at it, and the author's acknowledged log still names it."""

from __future__ import annotations

from typing import Any

import pytest

from ehr_client.batch.gc import collect
from ehr_client.client import EHRClient
from ehr_client.records import Scope
from ehr_client.storage import LocalStore
from tests.constants import DAY

LAB = int(Scope.LAB)


def test_gc_removes_the_ciphertext_an_interrupted_erasure_left(people: dict[str, EHRClient],
                                                                observation: dict[str, Any]) -> None:
    patient, lab = people["patient"], people["lab"]
    patient.grant(lab.address, LAB, access="amend", expires_at=patient.chain.now() + DAY, share_keys=False)
    written = lab.add_record(patient.address, observation)
    kept = lab.add_record(patient.address, {**observation, "valueQuantity": {"value": 6.1, "unit": "mmol/L"}})

    patient.tombstone(patient.get_record(written.record_id))  # erase's first step; the process dies here
    assert patient.get_record(written.record_id).status == "tombstoned"
    assert patient.store.has(written.cid)

    store = patient.store
    assert isinstance(store, LocalStore)
    report = collect(patient.chain, store, [patient.state_dir, lab.state_dir], grace=0, delete=True)

    assert patient.store.has(kept.cid)  # a live record's bytes are never collected
    assert written.cid in report.garbage and not patient.store.has(written.cid)
