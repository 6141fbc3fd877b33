"""Named to run last: it leaves the custodians refusing the portal's address for a minute."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account

from tests.cli.conftest import dev_key
from tests.portal.conftest import BROWSER_PATIENT_INDEX, Portal
from tests.portal_audited.conftest import CustodianProcess
from tests.portal_audited.fragments import domain_of, signed

UNSIGNED_REFUSALS_PER_MINUTE = 120  # CustodianSettings.unauthenticated_refusals_per_minute


def test_one_stranger_cannot_shut_every_patient_out_of_the_custodians(
        audited_portal: Portal, running: list[CustodianProcess], home: Path) -> None:
    domain = domain_of(audited_portal.get("/api/custodians").json())
    stranger = Account.create()
    for custodian in running:
        body = signed(bytes(stranger.key), domain, "Deposit", {
            "custodian": custodian.address, "patient": stranger.address, "grantee": stranger.address,
            "fragments": "0x" + "11" * 32})  # signed, valid for this custodian; no 'fragments' list sent
        for _ in range(UNSIGNED_REFUSALS_PER_MINUTE + 1):
            answer = audited_portal.post(f"/api/custodians/{custodian.address}/deposit", json=body)
            assert answer.status_code in (400, 429), answer.text

    # A patient then asks each custodian, through the portal, who read their records (a fresh signed query).
    patient_key = dev_key(BROWSER_PATIENT_INDEX)
    patient = Account.from_key(patient_key).address
    statuses = []
    for custodian in running:
        query = signed(patient_key, domain, "AuditQuery", {"custodian": custodian.address, "patient": patient})
        answer = audited_portal.post(f"/api/custodians/{custodian.address}/audit", json=query)
        statuses.append((answer.status_code, answer.json().get("error", {}).get("reason")))
    assert statuses == [(200, None)] * len(running), statuses
