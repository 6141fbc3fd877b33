"""Acknowledged means durable, and `ehr record recover` re-anchors from `acknowledged.log` what a chain
lost. A log cut short (a restored backup, a copy that stopped, a damaged disk) is taken for a crash
mid-append: the cut line is ignored as "never acknowledged", every line after it is gone, and nothing
says so. After the chain loses those writes, `recover` re-anchors only what is left and reports success."""

from __future__ import annotations

from typing import Any

from ehr_client.batch.recover import recover
from ehr_client.client import EHRClient
from ehr_client.errors import EHRError
from ehr_client.records import Scope
from tests.client.conftest import lab_result
from tests.constants import DAY

LAB = int(Scope.LAB)


def _obs(n: int) -> dict[str, Any]:
    return lab_result(f"red-team potassium {n}", 3 + n / 10)


def test_a_truncated_acknowledged_log_is_reported_not_taken_for_a_torn_append(people: dict[str, EHRClient]) -> None:
    patient, lab = people["patient"], people["lab"]
    patient.grant(lab.address, LAB, access="amend", expires_at=patient.chain.now() + 30 * DAY, share_keys=False)
    w3 = lab.chain.w3
    saved = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]  # the node's last dump
    written = [lab.add_record(patient.address, _obs(i)).record_id for i in range(3)]
    log = lab.journal.acknowledged_path
    data = log.read_bytes()
    first_end = data.index(b"\n") + 1
    log.write_bytes(data[:first_end + 40])  # cut inside the second of three acknowledged lines

    w3.provider.make_request("evm_revert", [saved])  # type: ignore[arg-type]  # the node lost them all
    try:
        results = recover(lab)
    except EHRError as exc:  # reported: the operator learns that acknowledged writes may be missing
        assert str(log) in str(exc)
        return
    on_chain = {r.record_id for r in patient.list_records(patient.address)}
    assert set(written) <= on_chain, f"recover reported {[r.outcome for r in results]} and lost acknowledged writes"
