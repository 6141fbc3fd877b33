"""Acknowledged means durable, for erasures too. A dev node killed before it dumped its state rolls back
(the fault `ehr record recover` was built for): writes the author acknowledged are re-anchored from its
logs, but nothing keeps the patient's acknowledged erasure. After the rollback the erased record is
"active" on chain again, and `recover` run by the patient finds nothing to do."""

from __future__ import annotations

from typing import Any

from ehr_client.batch.recover import recover
from ehr_client.client import EHRClient
from ehr_client.records import Scope
from ehr_client.sharing.audited import AuditedSharing
from ehr_client.sharing.remote import CustodianSet
from tests.constants import DAY

LAB = int(Scope.LAB)


def test_an_erasure_the_chain_lost_is_applied_again_by_recover(people: dict[str, EHRClient],
                                                                observation: dict[str, Any]) -> None:
    patient, lab = people["patient"], people["lab"]
    patient.grant(lab.address, LAB, access="amend", expires_at=patient.chain.now() + 30 * DAY, share_keys=False)
    written = lab.add_record(patient.address, observation)
    w3 = patient.chain.w3
    saved = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]  # the node's last dump

    erasure = AuditedSharing(patient, CustodianSet.connect(patient.chain, [])).erase(written.record_id)
    assert erasure.record_ids == (written.record_id,) and len(erasure.tombstone_txs) == 1
    assert patient.get_record(written.record_id).status == "tombstoned"  # reported done to the patient

    w3.provider.make_request("evm_revert", [saved])  # type: ignore[arg-type]  # killed before the next dump
    recover(patient)
    recover(lab)

    assert patient.get_record(written.record_id).status == "tombstoned"


def test_a_revocation_the_chain_lost_does_not_silently_restore_access(people: dict[str, EHRClient],
                                                                      observation: dict[str, Any]) -> None:
    patient, doctor = people["patient"], people["doctor"]
    written = patient.add_record(patient.address, observation)
    patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + 30 * DAY, share_keys=False)
    w3 = patient.chain.w3
    saved = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]  # the node's last dump
    patient.revoke(doctor.address)  # mined and reported to the patient
    can_read = patient.chain.consent.functions.canRead(patient.address, doctor.address, LAB)
    assert patient.chain.call(can_read, action="check") is False

    w3.provider.make_request("evm_revert", [saved])  # type: ignore[arg-type]  # killed before the next dump
    recover(patient)

    assert patient.chain.call(can_read, action="check") is False, f"doctor can read {written.record_id.hex()} again"
