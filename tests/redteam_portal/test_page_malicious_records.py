"""A consortium member with an amend grant (the lab) writes records for the browser patient with its
own code, skipping ehr_client's FHIR validation: what the patient's page then does with them in
headless Chromium. The patient is the portal suite's browser wallet, registered with its
wallet-derived key (as the page would register it)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from ehr_client.client import EHRClient
from ehr_client.client.model import hex_id
from ehr_client.client.write import Prepared
from ehr_client.errors import InvalidRecord
from ehr_client.keys.derive import derive_from_account
from ehr_client.keys.identity import Identity
from tests.cli.conftest import CAST
from tests.portal.conftest import BROWSER_PATIENT_INDEX, Portal, open_page
from tests.portal.wallet import TestWallet
from tests.redteam_portal.conftest import member_client

LAB = 2


@pytest.fixture(scope="module")
def browser_patient(world: dict[str, str], home: Path, anvil: Any, portal: Portal, lab_client: EHRClient,
                    tmp_path_factory: pytest.TempPathFactory) -> EHRClient:
    """The browser wallet registered with its derived key, the lab granted amend on lab results."""
    from tests.cli.conftest import dev_key
    config = portal.get("/api/config").json()
    account = Account.from_key(dev_key(BROWSER_PATIENT_INDEX))
    keys = derive_from_account(account, chain_id=config["chainId"], verifying_contract=config["contracts"]["KeyRegistry"])
    client = member_client(home, anvil.rpc_url, "lab", tmp_path_factory.mktemp("patient-state"))
    client = EHRClient(client.chain, client.store, Identity.from_derived(account, keys),
                       state_dir=tmp_path_factory.mktemp("patient-state2"))
    if not portal.get(f"/api/accounts/{account.address}").json()["registeredPatient"]:
        client.register_patient()
        client.publish_key()
    client.grant(world["lab"], LAB, access="amend", expires_at=client.chain.now() + 7 * 86400, share_keys=False)
    return client


def write_raw(lab: EHRClient, patient: str, media_type: str, plaintext: bytes) -> str:
    """What a member's own code can anchor: any bytes under any media type, sealed to the patient."""
    prepared = Prepared(LAB, media_type, plaintext, hashlib.sha256(plaintext).digest())
    return hex_id(lab.writer.write(patient, prepared, previous=None, version=1).record_id)


def open_in_page(browser: Any, wallet: TestWallet, portal: Portal, record_id: str, console: list[str]) -> Any:
    page = open_page(browser, wallet, console)
    page.goto(portal.url + "/")
    page.click("#connect")
    page.wait_for_selector("#records-view")
    page.wait_for_load_state("networkidle")  # the connect flow's own render of #records is done
    page.goto(portal.url + f"/#record/{record_id}")
    try:
        page.wait_for_selector("#record-body :is(.ok, #record-error)", timeout=60_000)
    except Exception:
        raise AssertionError(f"the record view never settled: {page.inner_text('body')[:600]!r}; {console}") from None
    return page


def test_a_record_named_like_an_object_method_is_shown_as_text_not_a_script_error(
    browser: Any, patient_wallet: TestWallet, portal: Portal, lab_client: EHRClient, browser_patient: EHRClient,
) -> None:
    """resourceType "constructor" once looked up Object in the page's table of views and called it;
    the patient saw "view(...).filter is not a function". Now the page says the FHIR has the wrong
    shape and shows the record as text."""
    record = write_raw(lab_client, patient_wallet.address, "application/fhir+json",
                       json.dumps({"resourceType": "constructor", "note": "Hb 9.1 g/dL"}).encode())
    console: list[str] = []
    page = open_in_page(browser, patient_wallet, portal, record, console)
    try:
        text = page.inner_text("#record-body")
        assert "is not a function" not in text and "Hb 9.1 g/dL" in text, text
        assert page.locator("#fhir-shape").count() == 1 or page.locator("section.fhir").count() == 1, text
    finally:
        page.context.close()


def test_a_record_with_a_field_of_the_wrong_json_type_is_not_shown_at_all(
    browser: Any, patient_wallet: TestWallet, portal: Portal, lab_client: EHRClient, browser_patient: EHRClient,
) -> None:
    """An Observation whose interpretation is a string (not a list): the renderer throws and the
    patient sees a JavaScript TypeError instead of their (verified, decrypted) result."""
    record = write_raw(lab_client, patient_wallet.address, "application/fhir+json", json.dumps({
        "resourceType": "Observation", "status": "final", "code": {"text": "Haemoglobin"},
        "valueQuantity": {"value": 9.1, "unit": "g/dL"}, "interpretation": "low"}).encode())
    with pytest.raises(InvalidRecord):  # the Python client refuses it with a typed error; the page does not
        browser_patient.read_record(bytes.fromhex(record[2:]))
    console: list[str] = []
    page = open_in_page(browser, patient_wallet, portal, record, console)
    try:
        text = page.inner_text("#record-body")
        assert "9.1" in text and "is not a function" not in text, text
    finally:
        page.context.close()


def test_held_deeply_nested_fhir_neither_freezes_nor_blanks_the_page(
    browser: Any, patient_wallet: TestWallet, portal: Portal, lab_client: EHRClient, browser_patient: EHRClient,
) -> None:
    nested = "[" * 200_000 + "]" * 200_000
    body = ('{"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "extension": ' + nested + "}")
    record = write_raw(lab_client, patient_wallet.address, "application/fhir+json", body.encode())
    console: list[str] = []
    page = open_in_page(browser, patient_wallet, portal, record, console)
    try:
        text = page.inner_text("#record-body")
        assert text.strip(), "blank record body"
        page.goto(portal.url + "/#records")
        page.wait_for_selector("#records-view")  # the page still answers
    finally:
        page.context.close()


def active_payload(media_type: str) -> bytes:
    """Script that, run in the portal's origin, reads the portal's API same-origin, then tries to
    open the real portal in a window it can script (the way to the keys and plaintext)."""
    steal = ("fetch(location.origin+'/api/config').then(r=>r.json()).then(c=>{"
             "let w=null,popup='blocked';try{w=window.open(location.origin+'/','p')}catch(e){popup=String(e)}"
             "setTimeout(()=>{try{popup=w?String(w.document.title):popup}catch(e){popup='no access: '+e.name}"
             "window.__pwned=JSON.stringify({origin:location.origin,chainId:c.chainId,relayer:c.relayer,popup})},3000)})")
    if media_type == "text/html":
        return f"<html><body><h1>Your lab report</h1><img src=x onerror=\"{steal}\"></body></html>".encode()
    steal = steal.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")  # an XML attribute
    return f"<svg xmlns='http://www.w3.org/2000/svg' onload=\"{steal}\"><text y='20'>report</text></svg>".encode()


@pytest.mark.parametrize("media_type", ["text/html", "image/svg+xml"])
def test_a_file_record_of_active_content_never_runs_in_the_portal_origin(
    browser: Any, patient_wallet: TestWallet, portal: Portal, lab_client: EHRClient, browser_patient: EHRClient,
    media_type: str,
) -> None:
    """The page once offered a file record as a blob: URL typed with the record's own media type, which
    the author chose: blob: URLs belong to the portal's origin and the document they open does not get
    the portal's Content-Security-Policy, so opening the "Download" link in a new tab ran the author's
    script as the portal. Now every file is offered as application/octet-stream: a new tab only
    downloads it."""
    record = write_raw(lab_client, patient_wallet.address, media_type, active_payload(media_type))
    console: list[str] = []
    page = open_in_page(browser, patient_wallet, portal, record, console)
    try:
        link = page.locator("#download")
        link.wait_for()
        assert (link.get_attribute("href") or "").startswith("blob:")
        with page.expect_download():  # a plain click saves the file: that path holds
            link.click()
        # "Open link in new tab" (context menu) navigates to the blob: URL instead of saving it
        opened = page.context.new_page()
        opened.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        try:
            with opened.expect_download():
                opened.goto(link.get_attribute("href") or "")
        except Exception as exc:  # Chromium reports the navigation as a download, which is the point
            assert "Download is starting" in str(exc), exc
        ran = opened.evaluate("() => window.__pwned || null")
        assert ran is None, (f"the {media_type} record ran script in {opened.url}, as the portal "
                             f"({portal.url}), no CSP in force: {ran}; console: {console}")
    finally:
        page.context.close()


def test_erase_whose_unpin_failed_is_later_reported_as_unpinned(
    browser: Any, patient_wallet: TestWallet, portal: Portal, lab_client: EHRClient, browser_patient: EHRClient,
    home: Path,
) -> None:
    """The patient erases a record; the tombstones are mined, then the unpin request does not reach
    the portal (restarted, network blip: aborted here). The page says the erase failed, offers no way
    to retry the unpin (a tombstoned record has no erase button), and from then on the record view
    says "its ciphertext unpinned" while the ciphertext is still in storage."""
    from ehr_client.storage import LocalStore

    record = write_raw(lab_client, patient_wallet.address, "application/fhir+json", json.dumps({
        "resourceType": "Observation", "status": "final", "code": {"text": "Ferritin"},
        "valueQuantity": {"value": 12, "unit": "ug/L"}}).encode())
    cid = next(r["cid"] for r in portal.get(f"/api/records/{patient_wallet.address}").json()["records"]
               if r["recordId"] == record)
    console: list[str] = []
    page = open_in_page(browser, patient_wallet, portal, record, console)
    try:
        page.route("**/api/erase/**", lambda route: route.abort())
        page.click("#erase")
        page.wait_for_selector("#status .message.error")
        failure = page.inner_text("#status")
        page.unroute("**/api/erase/**")
        page.goto(portal.url + "/#records")
        page.reload()
        page.click("#connect")
        page.wait_for_selector("#records-view")
        page.wait_for_load_state("networkidle")
        page.goto(portal.url + f"/#record/{record}")
        page.wait_for_selector("#erased")
        said = page.inner_text("#record-view")
        retry = page.locator("#erase").count()
        stored = LocalStore(home / "store").has(cid)
        assert not (stored and "unpinned" in page.inner_text("#erased")), (
            f"after {failure!r} the record view says {page.inner_text('#erased')!r} (erase buttons: {retry}) "
            f"while {cid} is still in the store: {stored}; view: {said[:300]!r}")
    finally:
        page.context.close()
