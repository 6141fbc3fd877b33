"""Audited release from the page when things go wrong, with typed messages and nothing lost or
doubled: custodians down before the deposit (below the threshold: the grant is on chain, keys not
released, a retry releases them without a second grant or a second fragment) and during it (above
the threshold: released, the missing custodian named); a record whose header carries a capsule
copied from another record (skipped, no fragment made); a custodian whose receipt is signed by
another key (shown as NOT verified); more fragments than one deposit body holds (several signed
deposits)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ehr_client.chain.ids import record_id_of
from ehr_client.client.write import prepare
from ehr_client.package import PackageHeader, RecordBinding, parse_header
from ehr_client.portal.custodians import MAX_CUSTODIAN_BODY
from ehr_client.records import Scope
from ehr_client.storage import cid_to_bytes
from ehr_client.sharing.audited import AuditedSharing
from tests.cli.conftest import Cli, cli_env
from tests.portal.conftest import Portal, screenshot, start_portal, stop_portal
from tests.portal.test_patient_walk import GLUCOSE, grant_in_page
from tests.portal_audited.conftest import RELAYER, THRESHOLD, CustodianProcess, HookedWallet, fragments_at
from tests.portal_audited.test_audited_walk import audited_grant, connect_and_register
from tests.portal_audited.fragments import deposit_items, domain_of
from tests.portal_audited.fronts import ResigningCustodian

LAB = int(Scope.LAB)


def lab_result(cli: Cli, patient: str, tmp_path: Path) -> bytes:
    """A new lab result for `patient` (the CLI writes the same content once: each test's differs)."""
    observation = tmp_path / "glucose.json"
    observation.write_text(json.dumps({**GLUCOSE, "id": os.urandom(8).hex()}))
    return bytes.fromhex(str(cli.json("record", "add", patient, str(observation), wallet="lab")["recordId"])[2:])


def lab_result_of_cli_patient(client_of: Any) -> bytes:
    """A record of the CLI patient (who holds its Umbral secret in a keystore), to measure a deposit item."""
    lab = client_of("lab")
    return lab.add_record(client_of("patient").address, {**GLUCOSE, "id": os.urandom(8).hex()}).record_id


def ready_patient(page: Any, portal: Portal, wallet: HookedWallet, world: dict[str, str]) -> None:
    connect_and_register(page, portal, wallet)
    grant_in_page(page, world["lab"], "lab", "amend", share=False)
    page.wait_for_selector("#grant-done")


def test_below_threshold_the_grant_stands_and_a_retry_releases_once(
    page: Any, audited_portal: Portal, running: list[CustodianProcess], cli: Cli, world: dict[str, str],
    patient_wallet: HookedWallet, home: Path, tmp_path: Path, doctor_reads: AuditedSharing,
) -> None:
    ready_patient(page, audited_portal, patient_wallet, world)
    record = lab_result(cli, patient_wallet.address, tmp_path)
    running[0].stop()
    running[1].stop()

    signed_before = len(patient_wallet.signed_kinds)
    audited_grant(page, world["doctor"], "lab")
    page.wait_for_selector("#release-failed")
    text = page.inner_text("#release-failed")
    assert "The grant is on chain, but the keys are not released yet" in text and "Retry" in text
    assert page.locator("#grant-done").count() == 1
    assert patient_wallet.signed_kinds[signed_before:] == ["Grant"]  # no deposit was signed
    assert fragments_at(running[2], home, record) == 0
    screenshot(page, "audited-04-below-threshold")

    running[0].start()
    running[1].start()
    page.click("#release-again")
    page.wait_for_selector("#release-done")
    assert patient_wallet.signed_kinds[signed_before:] == ["Grant", "Deposit", "Deposit", "Deposit"]  # no second grant
    assert [fragments_at(c, home, record) for c in running] == [1, 1, 1]
    grants = audited_portal.get(f"/api/grants/{patient_wallet.address}").json()["grants"]
    assert [g["grantee"] for g in grants].count(world["doctor"]) == 1
    assert doctor_reads.read_record(record).resource()["valueQuantity"]["value"] == 5.4


def test_a_custodian_down_during_the_deposit_above_threshold_is_named_and_the_rest_release(
    page: Any, audited_portal: Portal, running: list[CustodianProcess], cli: Cli, world: dict[str, str],
    patient_wallet: HookedWallet, home: Path, tmp_path: Path, doctor_reads: AuditedSharing,
) -> None:
    ready_patient(page, audited_portal, patient_wallet, world)
    record = lab_result(cli, patient_wallet.address, tmp_path)
    first = running[0]
    patient_wallet.on_sign["Deposit"] = lambda _document: first.stop()  # dies as the page signs its deposit

    audited_grant(page, world["doctor"], "lab")
    page.wait_for_selector("#release-done")

    done = page.inner_text("#release-done")
    assert set(page.locator("#release-custodians li").all_inner_texts()) == {c.address for c in running[1:]}
    assert "Did not take them" in done and first.address[:8] in done
    assert [fragments_at(c, home, record) for c in running[1:]] == [1, 1]
    assert doctor_reads.read_record(record).resource()["valueQuantity"]["unit"] == "mmol/L"  # 2 of 3 suffice
    import sqlite3
    before = sqlite3.connect(home / "custodian" / f"{first.name}.db").execute("select hex(record_id), grantee, created_at from fragments").fetchall() if False else None
    first.start()
    assert fragments_at(first, home, record) == 0
    screenshot(page, "audited-05-one-down")


def test_a_capsule_copied_from_another_record_is_skipped_and_no_fragment_is_made(
    page: Any, audited_portal: Portal, running: list[CustodianProcess], cli: Cli, world: dict[str, str],
    patient_wallet: HookedWallet, home: Path, tmp_path: Path, client_of: Any,
) -> None:
    ready_patient(page, audited_portal, patient_wallet, world)
    me = patient_wallet.address
    honest = lab_result(cli, me, tmp_path)
    lab = client_of("lab")
    honest_info = lab.get_record(honest)
    honest_header, _ = parse_header(lab.store.get(honest_info.cid))
    assert honest_header.umbral is not None

    # the lab writes a second record for the patient and swaps in the first record's capsule
    salt = os.urandom(32)
    decoy = record_id_of(lab.address, salt)
    prepared = prepare(GLUCOSE)
    sealed_cid, _ = lab.writer.seal(RecordBinding.of(decoy, 1, me, LAB, lab.address), prepared.media_type,
                                    prepared.source())
    sealed = lab.store.get(sealed_cid)
    header, offset = parse_header(sealed)
    forged = PackageHeader(header.version, header.media_type, header.wraps, honest_header.umbral,
                           header.binding).to_bytes() + sealed[offset:]
    cid = lab.store.put(forged)
    lab.chain.transact(lab.identity.account, lab.chain.records.functions.addRecord(
        salt, me, hashlib.sha256(forged).digest(), LAB, cid_to_bytes(cid)), action="decoy")

    audited_grant(page, world["doctor"], "lab")
    page.wait_for_selector("#release-done")

    skipped = page.locator(f"#release-skipped li[data-record='0x{decoy.hex()}']")
    assert skipped.count() == 1 and "does not open to this record" in skipped.inner_text()
    assert page.locator(f"#release-skipped li[data-record='0x{honest.hex()}']").count() == 0
    assert [fragments_at(c, home, decoy) for c in running] == [0, 0, 0]
    assert [fragments_at(c, home, honest) for c in running] == [1, 1, 1]
    screenshot(page, "audited-06-copied-capsule")


@pytest.fixture
def resigning_portal(running: list[CustodianProcess], home: Path, anvil: Any,
                     tmp_path: Path) -> Iterator[tuple[Portal, ResigningCustodian]]:
    front = ResigningCustodian(running[2].url)
    front.start()
    urls = ["--custodian", running[0].url, "--custodian", running[1].url, "--custodian", front.url]
    portal = start_portal(home, cli_env(home, anvil.rpc_url), tmp_path, "--relayer", *urls, wallet=RELAYER)
    try:
        yield portal, front
    finally:
        stop_portal(portal.process)
        front.stop()


def test_a_receipt_signed_by_another_key_is_shown_as_not_verified(
    page: Any, resigning_portal: tuple[Portal, ResigningCustodian], running: list[CustodianProcess], cli: Cli,
    world: dict[str, str], patient_wallet: HookedWallet, home: Path, tmp_path: Path,
) -> None:
    portal, front = resigning_portal
    listing = portal.get("/api/custodians").json()
    assert {c["address"] for c in listing["custodians"]} == {c.address for c in running}  # the front passes as #3
    ready_patient(page, portal, patient_wallet, world)
    record = lab_result(cli, patient_wallet.address, tmp_path)

    page.goto(portal.url + f"/#record/0x{record.hex()}")
    page.wait_for_selector("section.fhir")  # listed since the page last read the records
    page.click("#erase")
    page.wait_for_selector("#erase-done")

    rows = {row.get_attribute("data-custodian"): row for row in page.locator("#receipts tbody tr").all()}
    assert set(rows) == {c.address for c in running}
    for custodian in running[:2]:
        assert rows[custodian.address].get_attribute("data-verified") == "true"
    forged = rows[running[2].address]
    assert forged.get_attribute("data-verified") == "false"
    assert "NOT verified" in forged.inner_text() and "verified: signed" not in forged.inner_text()
    assert domain_of(listing).chain_id == int(listing["domain"]["chainId"])
    screenshot(page, "audited-07-bad-receipt")


def test_more_fragments_than_one_deposit_holds_go_in_several_signed_deposits(
    page: Any, audited_portal: Portal, running: list[CustodianProcess], world: dict[str, str],
    patient_wallet: HookedWallet, home: Path, client_of: Any,
) -> None:
    ready_patient(page, audited_portal, patient_wallet, world)
    lab = client_of("lab")
    records = [lab.add_record(patient_wallet.address, {**GLUCOSE, "id": f"many-{i}-{os.urandom(4).hex()}"}).record_id
               for i in range(50)]
    listing = audited_portal.get("/api/custodians").json()
    item = deposit_items(client_of("patient"), lab_result_of_cli_patient(client_of), world["doctor"],
                         listing["custodians"], threshold=THRESHOLD)[running[0].address][0]
    assert len(json.dumps(item)) * len(records) > MAX_CUSTODIAN_BODY  # one deposit could not hold them all

    signed_before = len(patient_wallet.signed_kinds)
    audited_grant(page, world["doctor"], "lab")
    page.wait_for_selector("#release-done")

    deposits = patient_wallet.signed_kinds[signed_before:].count("Deposit")
    assert deposits >= 2 * len(running) and deposits % len(running) == 0
    for custodian in running:
        assert [fragments_at(custodian, home, r) for r in records] == [1] * len(records)


def test_erase_with_a_custodian_down_names_it_and_its_receipt_is_collected_later(
    page: Any, audited_portal: Portal, running: list[CustodianProcess], cli: Cli, world: dict[str, str],
    patient_wallet: HookedWallet, home: Path, tmp_path: Path,
) -> None:
    ready_patient(page, audited_portal, patient_wallet, world)
    record = lab_result(cli, patient_wallet.address, tmp_path)
    record_id = "0x" + record.hex()
    audited_grant(page, world["doctor"], "lab")
    page.wait_for_selector("#release-done")
    down = running[0]
    down.stop()

    page.goto(audited_portal.url + f"/#record/{record_id}")
    page.wait_for_selector("section.fhir")
    page.click("#erase")
    page.wait_for_selector("#erase-done")

    rows = page.locator("#receipts tbody tr")
    assert {rows.nth(i).get_attribute("data-custodian") for i in range(rows.count())} == {c.address for c in running[1:]}
    assert down.address[:8] in page.inner_text("#receipts-missing")
    down.start()  # its poller sees the tombstone and destroys the fragment; asked again, it signs a receipt
    page.click("#collect-receipts")
    page.wait_for_selector("#receipts")
    rows = page.locator("#receipts tbody tr")
    by_custodian = {rows.nth(i).get_attribute("data-custodian"): rows.nth(i) for i in range(rows.count())}
    assert set(by_custodian) == {c.address for c in running}
    assert by_custodian[down.address].get_attribute("data-verified") == "true"
    assert [fragments_at(c, home, record) for c in running] == [0, 0, 0]
