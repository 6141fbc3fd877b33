"""A throwaway wallet, through the portal, makes a custodian write a database row per request."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account

from ehr_client.custodian.store import CustodianStore
from tests.portal.conftest import Portal
from tests.portal_audited.conftest import CustodianProcess
from tests.portal_audited.fragments import domain_of, signed

REQUESTS = 25


def refusal_rows(custodian: CustodianProcess, home: Path) -> int:
    store = CustodianStore(home / "custodian" / f"{custodian.name}.db")
    try:
        return store.count_refusal_rows()
    finally:
        store.close()


def test_throwaway_wallet_cannot_grow_a_custodians_database_through_the_portal(
        audited_portal: Portal, running: list[CustodianProcess], home: Path) -> None:
    listing = audited_portal.get("/api/custodians").json()
    domain = domain_of(listing)
    target = running[0]
    before = refusal_rows(target, home)
    answers = []
    for _ in range(REQUESTS):
        stranger = Account.create()  # a new wallet each time: no per-signer limit can apply
        key = bytes(stranger.key)
        body = signed(key, domain, "Deposit", {"custodian": target.address, "patient": stranger.address,
                                               "grantee": stranger.address, "fragments": "0x" + "11" * 32})
        body["fragments"] = [{"recordId": "0x" + "22" * 32}]  # not what was signed
        answers.append(audited_portal.post(f"/api/custodians/{target.address}/deposit", json=body))
    assert all(a.status_code == 400 and a.json()["error"]["reason"] == "malformed" for a in answers), \
        [a.text for a in answers[:3]]
    # What a stranger's requests may leave at the custodian: nothing (no row per request).
    assert refusal_rows(target, home) == before
