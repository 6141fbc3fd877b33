"""Records a lab anchored in a batch (`ehr record import`), handled from the page as single ones are:
released through the custodians by an audited grant, rotated (`amendBatchedRecord`) and erased
(`tombstoneBatchedRecord`), with the batch's proof of each record served by the portal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ehr_client.sharing.audited import AuditedSharing
from tests.cli.conftest import Cli
from tests.portal.conftest import Portal
from tests.portal.test_patient_walk import GLUCOSE, grant_in_page
from tests.portal_audited.conftest import CustodianProcess, HookedWallet, fragments_at
from tests.portal_audited.test_audited_walk import audited_grant, connect_and_register


def _import_batch(cli: Cli, patient: str, tmp_path: Path, values: tuple[float, ...]) -> list[str]:
    folder = tmp_path / "batch"
    folder.mkdir()
    for n, value in enumerate(values):
        (folder / f"glucose-{n}.json").write_text(json.dumps({**GLUCOSE, "valueQuantity": {
            **GLUCOSE["valueQuantity"], "value": value}}))
    imported = cli.json("record", "import", str(folder), "--patient", patient, wallet="lab")
    return [str(r["recordId"]) for r in imported["records"]]


def test_batched_records_are_released_rotated_and_erased_from_the_page(
    fresh_patient: tuple[Any, HookedWallet], audited_portal: Portal, running: list[CustodianProcess], cli: Cli,
    world: dict[str, str], home: Path, tmp_path: Path, doctor_reads: AuditedSharing,
) -> None:
    page, wallet = fresh_patient
    me = wallet.address
    connect_and_register(page, audited_portal, wallet)
    grant_in_page(page, world["lab"], "lab", "amend", share=False)
    page.wait_for_selector("#grant-done")
    first, second = _import_batch(cli, me, tmp_path, (6.1, 6.2))
    listed = {r["recordId"]: r for r in audited_portal.get(f"/api/records/{me}").json()["records"]}
    assert listed[first]["batched"] and listed[second]["batched"]
    proof = audited_portal.get(f"/api/batched/{first}").json()
    assert proof["stored"] is False and proof["batchedRecord"]["patient"] == me

    # released through the custodians like a single record; the doctor reads it with Python
    audited_grant(page, world["doctor"], "lab")
    page.wait_for_selector("#release-done")
    assert "release-skipped" not in page.content()
    for record_id in (first, second):
        assert [fragments_at(c, home, bytes.fromhex(record_id[2:])) for c in running] == [1, 1, 1]
    assert doctor_reads.read_record(bytes.fromhex(first[2:])).resource()["valueQuantity"]["value"] == 6.1

    # rotated: the new version amends the batched one by its proof
    page.goto(audited_portal.url + f"/#record/{second}")
    page.wait_for_selector("section.fhir")
    page.click("#rotate")
    page.wait_for_selector("#rotate-done, .message.error")
    assert page.locator("#rotate-done").count() == 1, page.inner_text("body")[:600]
    statuses = {r["recordId"]: r for r in audited_portal.get(f"/api/records/{me}").json()["records"]}
    newer = [r for r in statuses.values() if r["previousId"] == second]
    assert statuses[second]["status"] == "superseded" and len(newer) == 1 and not newer[0]["batched"]
    assert doctor_reads.read_record(bytes.fromhex(newer[0]["recordId"][2:])).resource()["valueQuantity"]["value"] == 6.2

    # erased: tombstoneBatchedRecord from the wallet, receipts from every custodian, no fragment left
    page.goto(audited_portal.url + f"/#record/{first}")
    page.wait_for_selector("section.fhir")
    page.click("#erase")
    page.wait_for_selector("#erase-done, .message.error")
    assert page.locator("#erase-done").count() == 1, page.inner_text("body")[:600]
    assert page.locator("#receipts tbody tr").count() == 3
    statuses = {r["recordId"]: r for r in audited_portal.get(f"/api/records/{me}").json()["records"]}
    assert statuses[first]["status"] == "tombstoned" and not statuses[first]["stored"]
    assert [fragments_at(c, home, bytes.fromhex(first[2:])) for c in running] == [0, 0, 0]
    assert audited_portal.get(f"/api/batched/{first}").json()["stored"] is True  # now on its own, tombstoned
