"""Acknowledged means durable: when a chain loses acknowledged writes (a dev node killed before it
saved its state rolls back to its last dump), `recover` anchors them again under the same ids."""

from __future__ import annotations

from typing import Any

from ehr_client.batch import BatchItem, BatchWriter
from ehr_client.batch.recover import recover
from ehr_client.client import EHRClient
from ehr_client.records import Scope, canonicalize
from tests.client.conftest import lab_result
from tests.constants import DAY

LAB = int(Scope.LAB)


def _obs(n: int) -> dict[str, Any]:
    return lab_result(f"glucose {n}", 5 + n / 10)


def test_writes_a_chain_lost_are_anchored_again_under_the_same_ids(people: dict[str, EHRClient]) -> None:
    patient, lab = people["patient"], people["lab"]
    patient.grant(lab.address, LAB, access="amend", expires_at=patient.chain.now() + 30 * DAY, share_keys=False)
    kept = lab.add_record(patient.address, _obs(0))
    w3 = lab.chain.w3
    saved = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]  # the node's last dump
    single = lab.add_record(patient.address, _obs(1))
    amended = lab.amend_record(single.record_id, _obs(2))
    batch = BatchWriter(lab).write([BatchItem(patient.address, _obs(10 + i)) for i in range(3)])
    acknowledged = [kept.record_id, single.record_id, amended.record_id, *batch.record_ids]
    assert [r.record_id for r in patient.list_records(patient.address)] == acknowledged

    w3.provider.make_request("evm_revert", [saved])  # type: ignore[arg-type]  # killed before the next dump
    assert [r.record_id for r in patient.list_records(patient.address)] == [kept.record_id]

    results = recover(lab)
    assert [(r.kind, r.outcome) for r in results] == [
        ("batch", "re-anchored"), ("record", "on chain"), ("record", "re-anchored"), ("record", "re-anchored")]
    listed = {r.record_id: r for r in patient.list_records(patient.address)}
    assert sorted(listed) == sorted(acknowledged)  # the same ids, each once (re-anchored in a new order)
    assert [listed[r].status for r in acknowledged[:3]] == ["active", "superseded", "active"]
    assert patient.read_record(amended.record_id).data == canonicalize(_obs(2))
    assert patient.read_record(batch.record_ids[2]).data == canonicalize(_obs(12))

    # running it again changes nothing: everything is on chain, nothing is anchored twice
    assert {r.outcome for r in recover(lab)} == {"on chain"}
    assert len(patient.list_records(patient.address)) == len(acknowledged)


def test_a_write_whose_blob_is_gone_is_reported_not_invented(people: dict[str, EHRClient]) -> None:
    patient, lab = people["patient"], people["lab"]
    patient.grant(lab.address, LAB, access="amend", expires_at=patient.chain.now() + 30 * DAY, share_keys=False)
    w3 = lab.chain.w3
    saved = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    written = lab.add_record(patient.address, _obs(3))
    w3.provider.make_request("evm_revert", [saved])  # type: ignore[arg-type]
    lab.store.remove(written.cid)
    results = recover(lab)
    assert [(r.ident, r.outcome) for r in results] == [(written.record_id, "blob missing")]
    assert patient.list_records(patient.address) == []
