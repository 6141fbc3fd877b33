"""A portal without a relayer: the patient's own wallet sends grant and revoke and pays for them,
the page says so, and the API refuses to relay with a typed error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ehr_client.chain.eip712 import sign_typed_data
from tests.cli.conftest import CAST, cli_env, dev_key
from tests.portal.conftest import open_page, screenshot, start_portal, stop_portal
from tests.portal.test_api import grant_document
from tests.portal.test_patient_walk import grant_in_page
from tests.portal.test_views import funded_wallet


def test_without_a_relayer_the_patient_pays_for_grant_and_revoke(
    browser: Any, world: dict[str, str], home: Path, anvil: Any, tmp_path: Path,
) -> None:
    portal = start_portal(home, cli_env(home, anvil.rpc_url), tmp_path)
    wallet = funded_wallet(anvil.rpc_url)
    console: list[str] = []
    page = open_page(browser, wallet, console)
    try:
        document = grant_document(portal, world["patient"], world["doctor"], nonce=0)
        signature = "0x" + sign_typed_data(dev_key(CAST.index("patient")), document).hex()
        refused = portal.post("/api/relay", json={"typedData": document, "signature": signature, "keyShare": None})
        assert refused.status_code == 503 and refused.json()["error"]["type"] == "NoRelayer"
        assert "your own wallet" in refused.json()["error"]["message"]
        assert portal.get("/api/config").json()["relayer"] is None

        page.goto(portal.url + "/")
        page.click("#connect")
        page.click("#register")
        page.wait_for_selector("#register-done")
        page.goto(portal.url + "/#grant")
        page.wait_for_selector("#grant-view")
        assert "your wallet sends the transaction and you pay the gas" in page.inner_text("#grant-view")
        grant_in_page(page, world["doctor"], "vitals", "read", share=True)
        page.wait_for_selector("#grant-done")
        assert "paid by you" in page.inner_text("#grant-done")
        assert wallet.calls.count("eth_sendTransaction") == 3  # register, publish key, grant
        screenshot(page, "own-gas-granted")

        page.goto(portal.url + "/#grants")
        page.locator(f"#grants tr[data-grantee='{world['doctor']}'] button").click()
        page.wait_for_selector("#revoke-done")
        assert "paid by you" in page.inner_text("#revoke-done")
        assert wallet.calls.count("eth_sendTransaction") == 4
        assert page.locator("#no-grants").count() == 1
        assert not [line for line in console if line.startswith("pageerror")], console
    finally:
        page.context.close()
        stop_portal(portal.process)
