"""An unauthenticated caller makes the portal call every custodian (and the chain) per request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from tests.cli.conftest import cli_env
from tests.portal.conftest import RELAYER, Portal, start_portal, stop_portal
from tests.portal_audited.conftest import THRESHOLD, CustodianProcess
from tests.portal_audited.fragments import domain_of, signed
from tests.portal_audited.fronts import CountingFront

REQUESTS = 10


@pytest.fixture
def fronted(running: list[CustodianProcess], home: Path, anvil: Any,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Portal, CountingFront]]:
    """A portal whose first custodian sits behind a counting front."""
    front = CountingFront(running[0].url)
    front.start()
    urls = [front.url] + [c.url for c in running[1:]]
    portal = start_portal(home, cli_env(home, anvil.rpc_url), tmp_path_factory.mktemp("fronted-portal"), "--relayer",
                          *[arg for url in urls for arg in ("--custodian", url)], "--threshold", str(THRESHOLD),
                          wallet=RELAYER)
    try:
        yield portal, front
    finally:
        stop_portal(portal.process)
        front.stop()


def test_a_request_for_an_unknown_custodian_is_refused_without_calling_the_custodians(
        fronted: tuple[Portal, CountingFront]) -> None:
    portal, front = fronted
    domain = domain_of(portal.get("/api/custodians").json())
    before = front.count("/v1/info")
    stranger = Account.create()
    answers = []
    for _ in range(REQUESTS):
        nobody = Account.create().address  # no custodian at all
        body = signed(bytes(stranger.key), domain, "AuditQuery", {"custodian": nobody, "patient": stranger.address})
        answers.append(portal.post(f"/api/custodians/{nobody}/audit", json=body))
    assert all(a.status_code == 404 and a.json()["error"]["type"] == "UnknownCustodian" for a in answers), \
        [a.text for a in answers[:2]]
    # A refusal of an address the portal never listed needs nothing from the custodians (at most one
    # re-listing for all of them, had it been rate-limited).
    assert front.count("/v1/info") - before <= 1, front.seen
