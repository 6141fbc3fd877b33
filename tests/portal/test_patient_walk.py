"""A patient's whole story in headless Chromium, with a real wallet signature at every step:
register -> a lab result written by the CLI -> open it in the browser -> grant a doctor with a
signed consent (relayed) and a key share made in the browser -> the doctor reads it with the CLI ->
the read shows in the timeline -> revoke -> the doctor is refused -> erase.

Screenshots of every page go to test-artifacts/portal/.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ehr_client.storage import LocalStore
from tests.cli.conftest import Cli
from tests.portal.conftest import Portal, screenshot
from tests.portal.wallet import TestWallet

GLUCOSE = {
    "resourceType": "Observation",
    "status": "final",
    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                              "code": "laboratory"}]}],
    "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]},
    "valueQuantity": {"value": 5.4, "unit": "mmol/L"},
}


def grant_in_page(page: Any, grantee: str, category: str | list[str], access: str, *, share: bool) -> None:
    page.goto(page.url.split("#")[0] + "#grant")
    form = page.locator("#grant-form")
    form.locator("input[name=grantee]").fill(grantee)
    for name in [category] if isinstance(category, str) else category:
        form.locator("label.check", has_text=name).locator("input").check()
    form.locator(f"input[name=access][value={access}]").check()
    form.locator("select[name=purpose]").select_option("treatment")
    share_box = form.locator("input[name=share]")
    share_box.check() if share else share_box.uncheck()
    form.locator("#grant-submit").click()


def test_patient_walk_register_read_grant_revoke_erase(
    page: Any, portal: Portal, cli: Cli, world: dict[str, str], patient_wallet: TestWallet, home: Path,
    tmp_path: Path, console: list[str],
) -> None:
    me = patient_wallet.address
    page.goto(portal.url + "/")
    page.wait_for_selector("#connect-view")
    screenshot(page, "01-connect")

    # connect: two signatures over the key-derivation message, no transaction
    page.click("#connect")
    page.wait_for_selector("#register-view")
    assert patient_wallet.calls.count("eth_signTypedData_v4") == 2
    assert "eth_sendTransaction" not in patient_wallet.calls
    screenshot(page, "02-register")

    # register: the patient pays for registerPatient and publishKey from the wallet
    page.click("#register")
    page.wait_for_selector("#register-done")
    assert patient_wallet.calls.count("eth_sendTransaction") == 2
    account = portal.get(f"/api/accounts/{me}").json()
    assert account["registeredPatient"] and account["x25519"]["version"] == 1
    screenshot(page, "03-registered")

    # a grant its grantee could not act on is refused before the wallet is asked for anything
    asked = len(patient_wallet.calls)
    grant_in_page(page, world["stranger"], "lab", "read", share=False)
    alert = page.locator("#status [role=alert]")
    alert.wait_for()
    assert "not a consortium member" in alert.inner_text() and "Nothing was granted" in alert.inner_text()
    assert patient_wallet.calls[asked:] == []

    # the lab may write lab results: a signed consent (amend, no key share) the hospital relays
    grant_in_page(page, world["lab"], "lab", "amend", share=False)
    page.wait_for_selector("#grant-done")
    assert "paid by the relayer" in page.inner_text("#grant-done")
    screenshot(page, "04-granted-lab")

    # a lab result written by the CLI, sealed to the key the browser derived
    observation = tmp_path / "glucose.json"
    observation.write_text(json.dumps(GLUCOSE))
    record_id = str(cli.json("record", "add", me, str(observation), wallet="lab")["recordId"])

    page.goto(portal.url + "/#records")
    row = page.locator(f"#records tr[data-record='{record_id}']")
    row.wait_for()
    assert "lab" in row.inner_text() and "active" in row.inner_text()
    screenshot(page, "05-records")
    row.locator("a.button").click()
    page.wait_for_selector("section.fhir[data-resource-type=Observation]")
    body = page.inner_text("#record-body")
    assert "Glucose" in body and "5.4 mmol/L" in body and "Verified against the chain" in body
    screenshot(page, "06-record-open")

    # grant the doctor: key share made in the browser, consent signed in the wallet, relayed
    grant_in_page(page, world["doctor"], "lab", "read", share=True)
    page.wait_for_selector("#key-share")
    key_share = page.inner_text("#key-share").strip()
    assert key_share.startswith("b")
    screenshot(page, "07-granted-doctor")

    # the doctor reads the record with the Python CLI and the browser's key share
    read = cli("record", "get", record_id, "--key-share", key_share, wallet="doctor")
    assert json.loads(read.stdout)["valueQuantity"] == {"value": 5.4, "unit": "mmol/L"}

    # the read is in the patient's timeline
    page.goto(portal.url + "/#timeline")
    page.wait_for_selector("#timeline tr[data-event=AccessRequested]")
    assert world["doctor"][:8] in page.inner_text("#timeline tr[data-event=AccessRequested]")
    screenshot(page, "08-timeline-read")

    # revoke from the active grants: a signed revocation the hospital relays
    page.goto(portal.url + "/#grants")
    doctor_row = page.locator(f"#grants tr[data-grantee='{world['doctor']}']")
    doctor_row.wait_for()
    screenshot(page, "09-grants")
    doctor_row.locator("button").click()
    page.wait_for_selector("#revoke-done")
    assert page.locator(f"#grants tr[data-grantee='{world['doctor']}']").count() == 0
    screenshot(page, "10-revoked")

    denied = cli("record", "get", record_id, "--key-share", key_share, wallet="doctor", expect=3)
    assert "may not read" in denied.stderr

    # erase: tombstoned from the wallet, then the portal unpins the ciphertext
    cid = portal.get(f"/api/records/{me}").json()["records"][-1]["cid"]
    assert LocalStore(home / "store").has(cid)
    page.goto(portal.url + f"/#record/{record_id}")
    page.wait_for_selector("section.fhir")
    page.click("#erase")
    page.wait_for_selector("#erase-done")
    page.wait_for_selector("#erased")
    assert not LocalStore(home / "store").has(cid)
    # the doctor's key share held only this record's key: unpinned, nothing left to re-issue
    assert "nothing left to share" in page.inner_text("#reissued-shares")
    assert not LocalStore(home / "store").has(key_share)
    statuses = [r["status"] for r in portal.get(f"/api/records/{me}").json()["records"] if r["recordId"] == record_id]
    assert statuses == ["tombstoned"]
    screenshot(page, "11-erased")

    page.goto(portal.url + "/#timeline")
    page.wait_for_selector("#timeline tr[data-event=AccessRevoked]")
    screenshot(page, "12-timeline")
    assert not [line for line in console if line.startswith("pageerror") or "Content Security Policy" in line], console
    portal_log = portal.log.read_text()
    assert "Glucose" not in portal_log and "mmol" not in portal_log  # the server never held the plaintext
