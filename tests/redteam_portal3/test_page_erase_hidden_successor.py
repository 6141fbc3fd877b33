"""The page's erasure follows amendments made during it. It did so through the portal's verified
listing, which leaves out a version whose anchored pointer is not a CID, and a grantee with amend
access anchors exactly that while the patient erases; it now follows the chain's facts (/api/versions)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ehr_client.chain.ids import record_id_of
from ehr_client.chain.types import Status
from ehr_client.client import EHRClient, Identity
from ehr_client.crypto import generate_x25519_keypair
from ehr_client.records import Scope
from tests.cli.conftest import Cli
from tests.portal.conftest import Portal
from tests.portal_audited.conftest import HookedWallet
from tests.redteam_portal2.observations import fresh_observation
from tests.redteam_portal3.shares import DAY, lab_results


def test_the_page_does_not_report_erased_while_an_amended_version_is_active_on_chain(
        fresh_patient: tuple[Any, HookedWallet], portal: Portal, cli: Cli, world: dict[str, str], client_of: Any,
        observation: Path, tmp_path: Path) -> None:
    page, wallet = fresh_patient
    me = wallet.address
    page.goto(portal.url + "/")
    page.click("#connect")
    page.wait_for_selector("#register-view")
    page.click("#register")
    page.wait_for_selector("#register-done")

    base = client_of("patient")
    identity = Identity.from_private_keys("0x" + bytes(wallet.account.key).hex(),
                                          {1: generate_x25519_keypair().private_key})
    patient = EHRClient(base.chain, base.store, identity, state_dir=tmp_path / "patient-state")
    patient.grant(world["lab"], int(Scope.LAB), access="amend", expires_at=patient.chain.now() + 30 * DAY,
                  share_keys=False)
    record_id = str(cli.json("record", "add", me, str(fresh_observation(observation, tmp_path)),
                             wallet="lab")["recordId"])

    lab: EHRClient = client_of("lab")
    salt = os.urandom(32)
    hidden = record_id_of(lab.address, salt)
    send = wallet._send

    def racing_send(tx: dict[str, Any]) -> str:
        if not getattr(racing_send, "done", False):  # lands just before the first tombstone
            racing_send.done = True  # type: ignore[attr-defined]
            lab.chain.transact(lab.identity.account, lab.chain.records.functions.amendRecord(
                bytes.fromhex(record_id[2:]), salt, os.urandom(32), b"not a CID"), action="amend record")
        return send(tx)

    wallet._send = racing_send  # type: ignore[method-assign]
    page.goto(portal.url + f"/#record/{record_id}")
    page.wait_for_selector("#erase")
    page.click("#erase")
    page.wait_for_selector("#erase-done, .message.error")
    assert getattr(racing_send, "done", False), "the race did not run"

    status = int(lab.chain.call(lab.chain.records.functions.recordStatus(hidden), action="look up record"))
    said_erased = page.locator("#erase-done").count() == 1
    assert not (said_erased and status == int(Status.ACTIVE)), (
        f"the page says erased while version 0x{hidden.hex()} of the record is active on chain")
    assert said_erased and status == int(Status.TOMBSTONED), page.locator(".message").all_inner_texts()
    assert page.locator("#erase-unverified").inner_text().count(f"0x{hidden.hex()[:6]}") == 1


def test_the_portal_states_a_version_the_listing_leaves_out(portal: Portal, cli: Cli, observation: Path,
                                                            client_of: Any, tmp_path: Path) -> None:
    lab: EHRClient = client_of("lab")  # the world's lab holds amend access to the CLI patient's lab results
    (record,) = lab_results(cli, observation, tmp_path, 1)
    salt = os.urandom(32)
    lab.chain.transact(lab.identity.account, lab.chain.records.functions.amendRecord(
        record, salt, os.urandom(32), b"not a CID"), action="amend record")
    hidden = "0x" + record_id_of(lab.address, salt).hex()

    patient = client_of("patient").address
    listed = [r["recordId"] for r in portal.get(f"/api/records/{patient}").json()["records"]]
    stated = portal.get(f"/api/versions/{hidden}").json()["versions"]

    assert hidden not in listed
    assert [(v["recordId"], v["status"], v["verified"]) for v in stated] == [
        ("0x" + record.hex(), "superseded", True), (hidden, "active", False)]
    assert stated[1]["previousId"] == "0x" + record.hex() and stated[1]["author"] == lab.address
    assert "not a CID" in stated[1]["problem"]
    assert portal.get(f"/api/versions/0x{record.hex()}").json()["versions"] == stated
    assert portal.get("/api/versions/0x12").status_code == 400
    assert portal.get("/api/versions/0x" + "ab" * 32).status_code == 404
