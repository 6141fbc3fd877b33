"""Erasure re-issues every share in the portal's share log, including shares an earlier erasure
already replaced: a replaced share whose bytes are back in the store (its grantee, a writer to the
world's store, puts the copy it was given) is re-issued again without only the record now erased,
so the key of the record erased before is sealed, pinned and told once more."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


from ehr_client.client import EHRClient
from ehr_client.keyshare import KeyShare
from ehr_client.records import Scope
from tests.cli.conftest import Cli
from tests.portal.conftest import Portal
from tests.redteam_portal3.shares import DAY, lab_results, store_page_share


def test_a_replaced_share_put_back_does_not_bring_an_erased_key_back(
        portal: Portal, cli: Cli, observation: Path, client_of: Callable[[str], EHRClient], tmp_path: Path) -> None:
    patient, doctor = client_of("patient"), client_of("doctor")
    first, second, kept = lab_results(cli, observation, tmp_path, 3)
    patient.grant(doctor.address, int(Scope.LAB), expires_at=patient.chain.now() + 30 * DAY, share_keys=False)
    share = store_page_share(portal, patient, doctor.address, [first, second, kept])
    given = portal.get(f"/api/blobs/{share}").content  # what the doctor was handed

    patient.tombstone(patient.get_record(first))
    assert portal.post(f"/api/erase/0x{first.hex()}").status_code == 200
    assert portal.get(f"/api/blobs/{share}").status_code == 404

    assert doctor.store.put(given) == share  # the doctor writes to the world's store like any member

    patient.tombstone(patient.get_record(second))
    answer = portal.post(f"/api/erase/0x{second.hex()}")
    assert answer.status_code == 200, answer.text

    holding_first = []
    for told in answer.json()["reissuedShares"]:
        if told["new"] is None:
            continue
        served = portal.get(f"/api/blobs/{told['new']}")
        if served.status_code == 200 and any(e.record_id == first for e in KeyShare.from_bytes(served.content).entries):
            holding_first.append(told)
    assert holding_first == [], f"erased record's key re-issued, pinned and told as the new share: {holding_first}"
