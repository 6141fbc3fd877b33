"""The page's erasure races an amendment: a lab with amend access amends the record while the patient's
wallet is sending the tombstone. Like the client's erasure (`AuditedSharing.erase`), the page looks for
such versions after its tombstones and erases them too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eth_account import Account

from ehr_client.client import EHRClient, Identity
from ehr_client.crypto import generate_x25519_keypair
from ehr_client.records import Scope
from tests.cli.conftest import Cli
from tests.portal.conftest import Portal
from tests.redteam_portal2.observations import fresh_observation
from tests.portal_audited.conftest import CustodianProcess, HookedWallet

DAY = 86400


def test_an_amendment_racing_the_pages_erasure_is_erased_too(
        fresh_patient: tuple[Any, HookedWallet], audited_portal: Portal, running: list[CustodianProcess], cli: Cli,
        world: dict[str, str], client_of: Any, observation: Path, tmp_path: Path) -> None:
    page, wallet = fresh_patient
    me = wallet.address
    page.goto(audited_portal.url + "/")
    page.click("#connect")
    page.wait_for_selector("#register-view")
    page.click("#register")
    page.wait_for_selector("#register-done")

    # The patient gives the lab amend access (from the same wallet key, outside the page).
    base = client_of("patient")
    identity = Identity.from_private_keys("0x" + bytes(wallet.account.key).hex(),
                                          {1: generate_x25519_keypair().private_key})
    patient = EHRClient(base.chain, base.store, identity, state_dir=tmp_path / "patient-state")
    patient.grant(world["lab"], int(Scope.LAB), access="amend", expires_at=patient.chain.now() + 30 * DAY,
                  share_keys=False)
    written = fresh_observation(observation, tmp_path)
    record_id = str(cli.json("record", "add", me, str(written), wallet="lab")["recordId"])

    amended: list[str] = []
    send = wallet._send

    def racing_send(tx: dict[str, Any]) -> str:
        if not amended:  # the lab's amendment lands just before the wallet's first tombstone
            corrected = tmp_path / "corrected.json"
            corrected.write_text(json.dumps({**json.loads(observation.read_text()), "status": "amended"}))
            amended.append(str(cli.json("record", "amend", record_id, str(corrected), wallet="lab")["recordId"]))
        return send(tx)

    wallet._send = racing_send  # type: ignore[method-assign]
    page.goto(audited_portal.url + f"/#record/{record_id}")
    page.wait_for_selector("#erase")
    page.click("#erase")
    page.wait_for_selector("#erase-done, .message.error")
    assert amended, "the race did not run"
    assert page.locator("#erase-done").count() == 1, page.inner_text("body")[:500]  # the page says: erased

    statuses = {r["recordId"]: r["status"] for r in audited_portal.get(f"/api/records/{me}").json()["records"]}
    assert statuses.get(record_id) == "tombstoned", statuses
    assert statuses.get(amended[0]) == "tombstoned", \
        f"the amended version is {statuses.get(amended[0])} after the erase"
