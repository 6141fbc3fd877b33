"""Anyone holding one of a patient's signed grants (the grantee is handed it) spends the patient's
relay quota by sending it again: the portal counts a consent before it finds it already relayed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from ehr_client.client import EHRClient, Identity
from ehr_client.crypto import generate_x25519_keypair
from ehr_client.client.consent import SignedConsent
from ehr_client.portal.relay_limits import RELAYS_PER_WINDOW
from ehr_client.records import Scope
from tests.portal.conftest import Portal
from tests.portal_audited.conftest import _fund

DAY = 86400


def _body(signed: SignedConsent) -> dict[str, Any]:
    return dict(json.loads(signed.to_json()))


def test_replaying_a_relayed_grant_does_not_block_the_patients_revocation(
        audited_portal: Portal, anvil: Any, client_of: Callable[[str], EHRClient], world: dict[str, str],
        tmp_path: Path) -> None:
    base = client_of("patient")
    account = Account.create()
    _fund(anvil.rpc_url, account.address)
    patient = EHRClient(base.chain, base.store, Identity.from_private_keys(
        "0x" + bytes(account.key).hex(), {1: generate_x25519_keypair().private_key}), state_dir=tmp_path / "state")
    patient.register_patient()
    doctor = world["doctor"]
    now = patient.chain.now()
    grant = patient.sign_grant(doctor, int(Scope.LAB), expires_at=now + 30 * DAY, deadline=now + DAY,
                               share_keys=False)
    first = audited_portal.post("/api/relay", json=_body(grant))
    assert first.status_code == 200 and first.json()["alreadyRelayed"] is False, first.text

    # The grantee sends the same signed grant again and again: nothing is mined.
    head = patient.chain.head()
    for _ in range(RELAYS_PER_WINDOW):
        again = audited_portal.post("/api/relay", json=_body(grant))
        assert again.status_code in (200, 429), again.text
    assert patient.chain.head() == head

    revocation = patient.sign_revoke(doctor, deadline=patient.chain.now() + DAY)
    answer = audited_portal.post("/api/relay", json=_body(revocation))
    assert answer.status_code == 200 and answer.json()["relayed"] == "revocation", answer.text
