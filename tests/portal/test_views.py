"""The record views a patient sees: each FHIR resource type the portal renders readably, a file
offered as a download, versions after an amendment, break-glass awaiting confirmation, and the
timeline exported as FHIR AuditEvents. Records are written by the hospital through the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3

from ehr_client.chain.abi import load_artifact
from ehr_client.storage import LocalStore
from tests.cli.conftest import CAST, Cli, dev_key
from tests.portal.conftest import Portal, open_page, screenshot
from tests.portal.test_patient_walk import grant_in_page
from tests.portal.wallet import TestWallet

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "fhir-r4-examples"
SHOWN = {  # example file -> (resourceType, a label and a value the readable view must show)
    "condition-example.json": ("Condition", "Condition", "Burnt Ear"),
    "allergyintolerance-example.json": ("AllergyIntolerance", "Allergy", "Cashew nuts"),
    "medicationrequest0301.json": ("MedicationRequest", "Dosage", "every 4-6 hours"),
    "immunization-example.json": ("Immunization", "Vaccine", "Fluvax (Influenza)"),
    "diagnosticreport-example-f201-brainct.json": ("DiagnosticReport", "Report", "CT of head-neck"),
}
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def funded_wallet(rpc_url: str) -> TestWallet:
    """A patient no other test uses, funded by the node (Anvil funds only its first ten accounts)."""
    account = Account.create()
    Web3(Web3.HTTPProvider(rpc_url)).provider.make_request("anvil_setBalance", [account.address, hex(10**20)])
    return TestWallet("0x" + bytes(account.key).hex(), rpc_url)


def open_break_glass(portal: Portal, rpc_url: str, patient: str, who: str) -> None:
    provider = Account.from_key(dev_key(CAST.index(who)))
    w3 = Web3(Web3.HTTPProvider(rpc_url))
    consent = w3.eth.contract(address=portal.get("/api/config").json()["contracts"]["ConsentManager"],
                              abi=load_artifact("ConsentManager")["abi"])
    tx = consent.functions.openBreakGlass(patient, 1).build_transaction(
        {"from": provider.address, "nonce": w3.eth.get_transaction_count(provider.address)})
    sent = w3.eth.send_raw_transaction(provider.sign_transaction(tx).raw_transaction)
    assert w3.eth.wait_for_transaction_receipt(sent, timeout=30)["status"] == 1


def test_records_render_per_type_with_versions_files_break_glass_and_export(
    browser: Any, portal: Portal, cli: Cli, world: dict[str, str], anvil: Any, tmp_path: Path, home: Path,
) -> None:
    wallet = funded_wallet(anvil.rpc_url)
    console: list[str] = []
    page = open_page(browser, wallet, console)
    try:
        page.goto(portal.url + "/")
        page.click("#connect")
        page.click("#register")
        page.wait_for_selector("#register-done")
        grant_in_page(page, world["hospital"], ["conditions", "medications", "immunizations", "imaging",
                                                "documents"], "amend", share=False)
        page.wait_for_selector("#grant-done")

        written: dict[str, str] = {}
        for name in SHOWN:
            written[name] = cli.json("record", "add", wallet.address, str(EXAMPLES / name), wallet="hospital")["recordId"]
        pdf = tmp_path / "discharge-letter.pdf"
        pdf.write_bytes(PDF)
        letter = cli.json("record", "add", wallet.address, str(pdf), "--category", "pdf", wallet="hospital")["recordId"]
        condition = json.loads((EXAMPLES / "condition-example.json").read_text())
        condition["severity"]["coding"][0]["display"] = "Moderate to severe"
        amended_file = tmp_path / "condition-v2.json"
        amended_file.write_text(json.dumps(condition))
        amended = cli.json("record", "amend", written["condition-example.json"], str(amended_file),
                           wallet="hospital")["recordId"]

        page.goto(portal.url + "/#records")
        page.wait_for_selector(f"#records tr[data-record='{amended}']")
        assert "2 (amended)" in page.inner_text(f"#records tr[data-record='{amended}']")
        assert page.locator(f"#records tr[data-record='{written['condition-example.json']}']").count() == 0
        screenshot(page, "views-records")

        for name, (resource_type, label, value) in SHOWN.items():
            record_id = amended if name == "condition-example.json" else written[name]
            page.goto(portal.url + f"/#record/{record_id}")
            view = page.locator(f"section.fhir[data-resource-type={resource_type}]")
            view.wait_for()
            text = view.locator("dl").inner_text()
            assert label in text and value in text, (name, text)
            screenshot(page, f"views-{resource_type}")
        page.goto(portal.url + f"/#record/{amended}")
        page.wait_for_selector("section.fhir[data-resource-type=Condition]")
        assert "Moderate to severe" in page.inner_text("section.fhir dl")
        assert page.locator("#record-view dd a").count() == 2  # v1 and v2

        # rotate the amended condition: re-encrypted in the browser, anchored by the patient's wallet
        old_cid = next(r["cid"] for r in portal.get(f"/api/records/{wallet.address}").json()["records"]
                       if r["recordId"] == amended)
        page.click("#rotate")
        page.wait_for_selector("#rotate-done")
        page.wait_for_selector("section.fhir[data-resource-type=Condition]")
        assert "Moderate to severe" in page.inner_text("section.fhir dl")
        listed = portal.get(f"/api/records/{wallet.address}").json()["records"]
        rotated = next(r for r in listed if r["previousId"] == amended)
        assert rotated["author"] == wallet.address and rotated["status"] == "active"
        assert not LocalStore(home / "store").has(old_cid) and LocalStore(home / "store").has(rotated["cid"])
        assert page.locator("#record-view dd a").count() == 3
        refused = cli("record", "get", rotated["recordId"], wallet="hospital", expect=None)
        assert refused.exit_code != 0 and "Moderate" not in refused.stdout  # sealed to the patient only
        screenshot(page, "views-rotated")
        again = portal.post(f"/api/rotated/{written['condition-example.json']}")  # v1: superseded by the hospital
        assert again.status_code == 403 and again.json()["error"]["type"] == "AccessDenied"

        page.goto(portal.url + f"/#record/{letter}")
        page.wait_for_selector("#download")
        with page.expect_download() as downloaded:
            page.click("#download")
        assert Path(downloaded.value.path()).read_bytes() == PDF
        screenshot(page, "views-file")

        open_break_glass(portal, anvil.rpc_url, wallet.address, "doctor")
        page.goto(portal.url + "/#grants")
        row = page.locator(f"#break-glass tr[data-requester='{world['doctor']}']")
        row.wait_for()
        assert "pending" in row.inner_text()
        screenshot(page, "views-break-glass")

        page.goto(portal.url + "/#timeline")
        page.wait_for_selector("#timeline tr[data-event=BreakGlassRequested]")
        page.click("#export-fhir")
        page.wait_for_selector("#fhir-download")
        with page.expect_download() as exported:
            page.click("#fhir-download")
        bundle = json.loads(Path(exported.value.path()).read_text())
        kinds = {entry["resource"]["resourceType"] for entry in bundle["entry"]}
        assert bundle["resourceType"] == "Bundle" and kinds == {"AuditEvent", "Consent"}
        assert "Burnt Ear" not in json.dumps(bundle)  # facts about records, never their contents
        screenshot(page, "views-timeline-export")
        assert not [line for line in console if line.startswith("pageerror")], console
    finally:
        page.context.close()
