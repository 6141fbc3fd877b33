"""Erasure (GDPR Art. 17) raced by an amendment: a provider holding the patient's amend grant lands a
new version of the record between the patient's look-up and the tombstone. The chain accepts the
tombstone of the now superseded version, `erase` reports the record erased, and the new version,
carrying the same clinical content, stays active and readable."""

from __future__ import annotations

from typing import Any

import pytest

from ehr_client.client import EHRClient
from ehr_client.errors import EHRError, RecordErased
from ehr_client.records import Scope
from ehr_client.sharing.audited import AuditedSharing
from ehr_client.sharing.remote import CustodianSet
from tests.constants import DAY

LAB = int(Scope.LAB)


def _amended(observation: dict[str, Any]) -> dict[str, Any]:
    return {**observation, "valueQuantity": {"value": 9.9, "unit": "mmol/L"}}


def test_erasure_raced_by_an_amendment_leaves_no_live_successor(people: dict[str, EHRClient],
                                                                 observation: dict[str, Any],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    patient, hospital = people["patient"], people["hospital"]
    v1 = patient.add_record(patient.address, observation)
    patient.grant(hospital.address, LAB, access="amend", expires_at=patient.chain.now() + DAY, share_keys=False)
    sharing = AuditedSharing(patient, CustodianSet.connect(patient.chain, []))

    landed: list[bytes] = []
    tombstone = patient.tombstone

    def amendment_first(info: Any) -> Any:
        # The attacker's transaction is mined just before the patient's tombstone (mempool watcher).
        if not landed:
            landed.append(hospital.amend_record(v1.record_id, _amended(observation)).record_id)
        return tombstone(info)

    monkeypatch.setattr(patient, "tombstone", amendment_first)
    try:
        erasure = sharing.erase(v1.record_id)
    except EHRError as exc:  # refusing is fine, if it says so: the patient then erases the newer version
        assert landed and "0x" + landed[0].hex() in str(exc)
        return
    successor = landed[0]
    assert successor in erasure.record_ids
    assert patient.get_record(successor).status == "tombstoned"
    with pytest.raises(RecordErased):
        hospital.read_record(successor)
