"""/api/keyshares asks the chain's canRead at the latest block: on a chain that mines only when there
are transactions (Anvil's automine; any quiet private chain), a grant past its end still reads as in force."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ehr_client.client import EHRClient
from ehr_client.records import Scope
from tests.cli.conftest import Cli
from tests.portal.conftest import Portal
from tests.redteam_portal2.observations import fresh_observation
from tests.portal_audited.conftest import CustodianProcess
from tests.redteam_portal2.test_page_erasure_keeps_shares import _page_share, _signed_headers

GRANT_SECONDS = 4


def test_the_portal_stores_no_key_share_for_a_grant_that_has_ended(
        audited_portal: Portal, running: list[CustodianProcess], cli: Cli, observation: Path,
        client_of: Callable[[str], EHRClient], tmp_path: Path) -> None:
    patient, grantee = client_of("patient"), client_of("hospital")
    written = fresh_observation(observation, tmp_path)
    record = bytes.fromhex(str(cli.json("record", "add", "patient", str(written), wallet="lab")["recordId"])[2:])
    ends = patient.chain.now() + GRANT_SECONDS
    patient.grant(grantee.address, int(Scope.LAB), expires_at=ends, share_keys=False)
    while time.time() <= ends + 2:  # the grant ends by the wall clock; nothing is mined meanwhile
        time.sleep(0.5)
    assert time.time() > ends

    body = _page_share(patient, grantee.address, [record])
    stored = audited_portal.post("/api/keyshares", content=body,
                                 headers=_signed_headers(patient, "store-key-share", hashlib.sha256(body).digest()))
    assert stored.status_code == 403 and stored.json()["error"]["type"] == "AccessDenied", stored.text
