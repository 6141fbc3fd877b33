"""Audited release from the patient's browser, with three real custodians and a real Python grantee:
register (X25519 and Umbral keys published from the wallet) -> a lab result written by the CLI ->
an audited grant in the page (fragments made and sealed in Chromium, one wallet-signed Deposit per
custodian, through the portal) -> the doctor enrols with TOTP and reads through the custodians with
Python -> revoke -> the doctor's custodian read is refused -> erase in the page, receipts checked in
the browser -> the custodians hold no fragment of it. Python interop is the proof: the Python
custodians verify and re-encrypt the browser's fragments and the Python grantee opens the key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ehr_client.errors import AccessDenied
from ehr_client.sharing.audited import AuditedSharing
from tests.cli.conftest import Cli
from tests.portal.conftest import Portal, screenshot
from tests.portal.test_patient_walk import GLUCOSE, grant_in_page
from tests.portal_audited.conftest import CustodianProcess, HookedWallet, fragments_at


def audited_grant(page: Any, grantee: str, category: str) -> None:
    """Fill the grant form for an audited read grant (no key share) and submit it."""
    page.goto(page.url.split("#")[0] + "#grant")
    form = page.locator("#grant-form")
    form.locator("input[name=grantee]").fill(grantee)
    form.locator("label.check", has_text=category).locator("input").check()
    form.locator("input[name=access][value=read]").check()
    form.locator("select[name=purpose]").select_option("treatment")
    form.locator("input[name=share]").uncheck()
    form.locator("#grant-audited").check()
    form.locator("#grant-submit").click()


def connect_and_register(page: Any, portal: Portal, wallet: HookedWallet) -> None:
    page.goto(portal.url + "/")
    page.click("#connect")
    page.wait_for_selector("#register-view, #records-view")
    if page.locator("#register").count():
        page.click("#register")
        page.wait_for_selector("#register-done")
    else:
        page.wait_for_selector("#records, #no-records")


def test_audited_walk_grant_read_revoke_erase(
    fresh_patient: tuple[Any, HookedWallet], audited_portal: Portal, running: list[CustodianProcess], cli: Cli,
    world: dict[str, str], home: Path, tmp_path: Path, doctor_reads: AuditedSharing, console: list[str],
) -> None:
    page, patient_wallet = fresh_patient
    me = patient_wallet.address
    page.goto(audited_portal.url + "/")
    page.click("#connect")
    page.wait_for_selector("#register-view")
    assert "KeyRegistry.publishKey(Umbral" in page.inner_text("#register-view")
    screenshot(page, "audited-01-register")
    page.click("#register")
    page.wait_for_selector("#register-done")
    account = audited_portal.get(f"/api/accounts/{me}").json()
    assert account["registeredPatient"] and account["umbral"] is not None
    assert patient_wallet.calls.count("eth_sendTransaction") == 3  # patient, X25519 key, Umbral key

    grant_in_page(page, world["lab"], "lab", "amend", share=False)
    page.wait_for_selector("#grant-done")
    observation = tmp_path / "glucose.json"
    observation.write_text(json.dumps(GLUCOSE))
    record_id = str(cli.json("record", "add", me, str(observation), wallet="lab")["recordId"])
    record = bytes.fromhex(record_id[2:])

    # the audited grant: on chain (relayed), then fragments made in the browser, deposited via the portal
    signed_before = len(patient_wallet.signed_kinds)
    audited_grant(page, world["doctor"], "lab")
    page.wait_for_selector("#release-done")
    assert "off chain, free" in page.inner_text("#release-done")
    assert set(page.locator("#release-custodians li").all_inner_texts()) == {c.address for c in running}
    assert patient_wallet.signed_kinds[signed_before:] == ["Grant", "Deposit", "Deposit", "Deposit"]
    assert [fragments_at(c, home, record) for c in running] == [1, 1, 1]
    screenshot(page, "audited-02-released")

    # the doctor (second factor at each custodian: the doctor_reads fixture) reads with the Python client
    sharing = doctor_reads
    read = sharing.read_record(record)
    assert read.resource()["valueQuantity"] == {"value": 5.4, "unit": "mmol/L"}

    # the patient sees the read, and which custodians released a fragment for it (AuditQuery per custodian)
    page.goto(audited_portal.url + "/#timeline")
    page.wait_for_selector("#timeline tr[data-event=AccessRequested]")
    page.click("#show-releases")
    page.wait_for_selector("#releases-done")
    released_by = page.locator("#timeline tr[data-event=AccessRequested] .released").first.get_attribute("data-released-by")
    assert released_by and set(released_by.split(",")) <= {c.address for c in running}
    assert len(released_by.split(",")) >= 2
    screenshot(page, "audited-02b-timeline-releases")

    # revoke: the custodians refuse the next read
    page.goto(audited_portal.url + "/#grants")
    row = page.locator(f"#grants tr[data-grantee='{world['doctor']}']")
    row.wait_for()
    row.locator("button").click()
    page.wait_for_selector("#revoke-done")
    with pytest.raises(AccessDenied):
        sharing.read_record(record)

    # erase: tombstone from the wallet, then one Destroy per custodian, receipts checked in the browser
    page.goto(audited_portal.url + f"/#record/{record_id}")
    page.wait_for_selector("section.fhir")
    page.click("#erase")
    page.wait_for_selector("#erase-done")
    rows = page.locator("#receipts tbody tr")
    assert rows.count() == 3
    assert {rows.nth(i).get_attribute("data-custodian") for i in range(3)} == {c.address for c in running}
    assert all(rows.nth(i).get_attribute("data-verified") == "true" for i in range(3))
    assert "NOT verified" not in page.inner_text("#receipts")
    assert [fragments_at(c, home, record) for c in running] == [0, 0, 0]
    screenshot(page, "audited-03-erased-receipts")
    assert not [line for line in console if line.startswith("pageerror") or "Content Security Policy" in line], console
    portal_log = audited_portal.log.read_text()
    assert "Glucose" not in portal_log and "mmol" not in portal_log


def test_rotate_destroys_the_old_fragments_and_reissues_the_new_version_to_the_doctor(
    fresh_patient: tuple[Any, HookedWallet], audited_portal: Portal, running: list[CustodianProcess], cli: Cli,
    world: dict[str, str], home: Path, tmp_path: Path, doctor_reads: AuditedSharing,
) -> None:
    page, patient_wallet = fresh_patient
    connect_and_register(page, audited_portal, patient_wallet)
    grant_in_page(page, world["lab"], "lab", "amend", share=False)
    page.wait_for_selector("#grant-done")
    observation = tmp_path / "glucose.json"
    observation.write_text(json.dumps(GLUCOSE))
    old_id = str(cli.json("record", "add", patient_wallet.address, str(observation), wallet="lab")["recordId"])
    old = bytes.fromhex(old_id[2:])
    audited_grant(page, world["doctor"], "lab")
    page.wait_for_selector("#release-done")
    assert [fragments_at(c, home, old) for c in running] == [1, 1, 1]

    page.goto(audited_portal.url + f"/#record/{old_id}")
    page.wait_for_selector("section.fhir")
    page.click("#rotate")
    page.wait_for_selector("#rotate-done")

    assert world["doctor"][:8] in page.inner_text("#rotate-reissued")
    rows = page.locator("#receipts tbody tr")
    assert rows.count() == 3
    assert all(rows.nth(i).get_attribute("data-verified") == "true" for i in range(3))
    assert all(rows.nth(i).get_attribute("data-record") == old_id for i in range(3))
    new_id = page.url.split("#record/")[1]
    new = bytes.fromhex(new_id[2:])
    assert new != old
    assert [fragments_at(c, home, old) for c in running] == [0, 0, 0]
    assert [fragments_at(c, home, new) for c in running] == [1, 1, 1]
    screenshot(page, "audited-08-rotated")
    # the version the browser wrote carries a capsule the Python custodians re-encrypt and the doctor opens
    assert doctor_reads.read_record(new).resource()["valueQuantity"] == {"value": 5.4, "unit": "mmol/L"}
