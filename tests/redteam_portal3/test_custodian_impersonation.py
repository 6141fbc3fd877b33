"""Custodians are re-verified on chain at every listing and forward, but which custodian answers at
a URL is taken from that URL's own unsigned /v1/info: the chain can only confirm that the address it
names is an active custodian with that (public) key, not that the server holds it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eth_account import Account

from tests.cli.conftest import cli_env
from tests.portal.conftest import RELAYER, start_portal, stop_portal
from tests.portal_audited.conftest import CustodianProcess
from tests.portal_audited.fronts import CountingFront
from tests.portal_audited.fragments import domain_of, signed
from tests.redteam_portal3.impersonator import Impersonator


def _audit_through_a_portal(home: Path, anvil: Any, tmp_path: Path, urls: list[str],
                            victim: str) -> tuple[dict[str, Any], Any, str]:
    """A portal over `urls`: its custodian listing, its answer to an AuditQuery signed for `victim`
    by a fresh patient, and its log."""
    flags = [part for url in urls for part in ("--custodian", url)]
    portal = start_portal(home, cli_env(home, anvil.rpc_url), tmp_path, "--relayer", *flags, "--threshold", "2",
                          wallet=RELAYER)
    try:
        listing = portal.get("/api/custodians").json()
        patient = Account.create()
        query = signed(bytes(patient.key), domain_of(listing), "AuditQuery",
                       {"custodian": victim, "patient": patient.address})
        answer = portal.post(f"/api/custodians/{victim}/audit", json=query)
    finally:
        stop_portal(portal.process)
    return listing, answer, portal.log.read_text()


def test_one_configured_url_cannot_take_another_custodians_traffic(
        running: list[CustodianProcess], home: Path, anvil: Any, tmp_path: Path) -> None:
    honest, victim = running[0], running[1]
    impostor = Impersonator(victim.info())  # the victim's address and key, as anyone can read them
    impostor.start()
    try:
        listing, answer, _ = _audit_through_a_portal(home, anvil, tmp_path, [honest.url, victim.url, impostor.url],
                                                     victim.address)
    finally:
        impostor.stop()
    listed = [c["address"] for c in listing["custodians"]]
    assert impostor.count("/v1/audit") == 0, (
        f"the portal sent the request signed for {victim.address} to the impostor (answered {answer.status_code}); "
        f"listed: {listed}")
    assert len(listed) == len(set(listed)), f"one custodian listed twice to the page: {listed}"


def test_a_url_relaying_another_custodians_answers_takes_neither_url(
        running: list[CustodianProcess], home: Path, anvil: Any, tmp_path: Path) -> None:
    """An impostor that relays the challenge to the real custodian proves nothing about itself: two
    URLs then answer as one custodian, and the portal uses neither rather than guess."""
    honest, victim = running[0], running[1]
    relay = CountingFront(victim.url)
    relay.start()
    try:
        listing, answer, log = _audit_through_a_portal(home, anvil, tmp_path, [honest.url, victim.url, relay.url],
                                                       victim.address)
    finally:
        relay.stop()
    assert [c["address"] for c in listing["custodians"]] == [honest.address] and listing["rejected"] == 2
    assert answer.status_code == 404 and relay.count("/v1/audit") == 0, answer.text
    assert "both answer as custodian" in log
