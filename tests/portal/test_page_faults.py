"""What the page shows when something is wrong: a chain node that is down, a record whose stored
bytes fail verification. Always a message that says what happened, never a blank page, and
nothing decrypted from bytes that failed a check."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from web3 import Web3

from ehr_client.chain.abi import load_artifact
from ehr_client.chain.ids import record_id_of
from ehr_client.storage.cid import cid_to_bytes
from ehr_client.storage import LocalStore
from tests.cli.conftest import CAST, Cli, cli_env, dev_key, free_port
from tests.portal.conftest import BROWSER_PATIENT_INDEX, Portal, open_page, screenshot, start_portal, stop_portal
from tests.portal.test_patient_walk import GLUCOSE, grant_in_page
from tests.portal.wallet import TestWallet

SECOND_PATIENT_INDEX = BROWSER_PATIENT_INDEX + 1


def relist(portal: Portal, rpc_url: str, record: dict[str, Any], patient: str) -> str:
    """Anchor `record`'s stored bytes again as a new lab record of `patient` (a raw call, as an attacker would)."""
    lab = Account.from_key(dev_key(CAST.index("lab")))
    w3 = Web3(Web3.HTTPProvider(rpc_url))
    registry = w3.eth.contract(address=portal.get("/api/config").json()["contracts"]["RecordRegistry"],
                               abi=load_artifact("RecordRegistry")["abi"])
    listed = portal.get(f"/api/records/{patient}").json()["records"]
    original = next(r for r in listed if r["recordId"] == record["recordId"])
    salt = os.urandom(32)
    call = registry.functions.addRecord(salt, patient, bytes.fromhex(original["contentHash"][2:]), original["scope"],
                                        cid_to_bytes(original["cid"]))
    tx = call.build_transaction({"from": lab.address, "nonce": w3.eth.get_transaction_count(lab.address)})
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(lab.sign_transaction(tx).raw_transaction), timeout=30)
    assert receipt["status"] == 1
    return "0x" + record_id_of(lab.address, salt).hex()


def test_page_says_the_chain_is_down(browser: Any, home: Path, world: dict[str, str], tmp_path: Path,
                                     patient_wallet: TestWallet) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    portal = start_portal(home, cli_env(home, dead), tmp_path)  # starts although its node does not answer
    console: list[str] = []
    page = open_page(browser, patient_wallet, console)
    try:
        config = portal.get("/api/config")
        assert config.status_code == 503 and config.json()["error"]["type"] == "ChainUnavailable"
        page.goto(portal.url + "/")
        page.wait_for_selector("#startup-error")
        message = page.inner_text("#startup-error")
        assert dead in message or "chain" in message.lower()
        assert page.locator("[role=alert]").count() == 1
        screenshot(page, "fault-chain-down")
    finally:
        page.context.close()
        stop_portal(portal.process)


def test_record_failing_verification_shows_a_message_and_nothing_decrypted(
    browser: Any, portal: Portal, cli: Cli, world: dict[str, str], home: Path, tmp_path: Path, anvil: Any,
) -> None:
    wallet = TestWallet(dev_key(SECOND_PATIENT_INDEX), anvil.rpc_url)
    console: list[str] = []
    page = open_page(browser, wallet, console)
    try:
        page.goto(portal.url + "/")
        page.click("#connect")
        page.wait_for_selector("#register")
        page.click("#register")
        page.wait_for_selector("#register-done")
        grant_in_page(page, world["lab"], "lab", "amend", share=False)
        page.wait_for_selector("#grant-done")
        observation = tmp_path / "glucose.json"
        observation.write_text(json.dumps(GLUCOSE))
        record = cli.json("record", "add", wallet.address, str(observation), wallet="lab")
        stored = LocalStore(home / "store").path_for(record["cid"])
        original = stored.read_bytes()
        damaged = bytearray(original)
        damaged[-5] ^= 0x01  # one bit of the ciphertext
        stored.chmod(0o644)
        stored.write_bytes(bytes(damaged))
        try:
            page.goto(portal.url + f"/#record/{record['recordId']}")
            page.wait_for_selector("#record-error")
            assert page.locator("section.fhir").count() == 0
            assert "Glucose" not in page.inner_text("main")
            screenshot(page, "fault-record-fails-verification")
        finally:
            stored.write_bytes(original)
        page.reload()
        page.click("#connect")
        page.wait_for_selector("#records-view")
        page.goto(portal.url + f"/#record/{record['recordId']}")
        page.wait_for_selector("section.fhir[data-resource-type=Observation]")  # the intact bytes open again

        # the lab re-lists the same ciphertext as another record of this patient: hash and CID match
        # the chain, but the package names the first record, so the page refuses to decrypt it
        relisted = relist(portal, anvil.rpc_url, record, wallet.address)
        page.goto(portal.url + "/#records")
        page.wait_for_selector(f"#records tr[data-record='{relisted}']")
        page.goto(portal.url + f"/#record/{relisted}")
        page.wait_for_selector("#record-error")
        assert page.inner_text("#record-error").startswith("This record failed verification:")
        assert "re-listed" in page.inner_text("#record-error")
        assert page.locator("section.fhir").count() == 0
        screenshot(page, "fault-record-relisted")

        # erasing the re-listed record tombstones it but leaves the bytes of the record they belong to
        page.click("#erase")
        page.wait_for_selector("#erase-done")
        assert "belong to another record" in page.inner_text("#erase-done")
        assert LocalStore(home / "store").has(record["cid"])
        page.goto(portal.url + f"/#record/{record['recordId']}")
        page.wait_for_selector("section.fhir[data-resource-type=Observation]")
        assert not [line for line in console if line.startswith("pageerror")], console
    finally:
        page.context.close()


def test_wallet_that_signs_with_random_nonces_is_refused(browser: Any, portal: Portal, anvil: Any) -> None:
    """Keys derived from a non-deterministic signature could never be derived again: refused, said why."""
    account = Account.create()
    wallet = TestWallet("0x" + bytes(account.key).hex(), anvil.rpc_url, random_nonces=True)
    first = wallet.handle("eth_signTypedData_v4", json.dumps([wallet.address, json.dumps(PROBE)]))
    second = wallet.handle("eth_signTypedData_v4", json.dumps([wallet.address, json.dumps(PROBE)]))
    assert first != second
    assert Account.recover_message(encode_typed_data(full_message=PROBE),
                                   signature=json.loads(first)["result"]) == wallet.address  # valid, just not stable
    console: list[str] = []
    page = open_page(browser, wallet, console)
    try:
        page.goto(portal.url + "/")
        page.click("#connect")
        alert = page.locator("#status [role=alert]")
        alert.wait_for()
        assert "deterministic" in alert.inner_text()
        assert page.locator("#connect-view").count() == 1 and page.locator("#register-view").count() == 0
        assert "eth_sendTransaction" not in wallet.calls
        screenshot(page, "fault-nondeterministic-wallet")
    finally:
        page.context.close()


PROBE = {
    "types": {"EIP712Domain": [{"name": "name", "type": "string"}], "Probe": [{"name": "n", "type": "uint256"}]},
    "primaryType": "Probe", "domain": {"name": "probe"}, "message": {"n": 1},
}
