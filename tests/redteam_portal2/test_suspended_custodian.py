"""The consortium suspends a key custodian; the portal keeps listing it to the page and forwarding to it,
because it asks the chain about a custodian only when the custodian's own /v1/info answer changes."""

from __future__ import annotations

import pytest
from eth_account import Account

from tests.cli.conftest import Cli
from tests.portal.conftest import Portal
from tests.portal_audited.conftest import CustodianProcess
from tests.portal_audited.fragments import domain_of, signed


def test_the_portal_stops_using_a_custodian_the_consortium_suspended(
        audited_portal: Portal, running: list[CustodianProcess], cli: Cli) -> None:
    before = audited_portal.get("/api/custodians").json()
    assert {c["address"] for c in before["custodians"]} == {c.address for c in running}  # all verified once
    target = running[-1]
    cli("consortium", "suspend", target.name, wallet="gov-a")
    try:
        after = audited_portal.get("/api/custodians").json()
        listed = {c["address"] for c in after["custodians"]}
        stranger = Account.create()
        query = signed(bytes(stranger.key), domain_of(after), "AuditQuery",
                       {"custodian": target.address, "patient": stranger.address})
        forwarded = audited_portal.post(f"/api/custodians/{target.address}/audit", json=query)
    finally:
        proposed = cli.json("consortium", "propose", "reinstate", target.name, wallet="gov-a")
        cli("consortium", "approve", str(proposed["proposalId"]), "--execute", wallet="gov-b")
    # (still listed to the page, answered through the portal) should be (False, refused)
    assert (target.address in listed, forwarded.status_code) == (False, 404), forwarded.text
