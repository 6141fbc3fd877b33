"""Attacks of this round that the running system turned away (kept as regression tests)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from eth_account import Account

from ehr_client.client import EHRClient
from tests.cli.conftest import Cli
from tests.portal.conftest import Portal
from tests.portal_audited.conftest import CustodianProcess
from tests.portal_audited.fragments import domain_of, signed
from tests.redteam_portal2.observations import fresh_observation
from tests.redteam_portal2.test_page_erasure_keeps_shares import _page_share, _signed_headers


def test_a_signed_request_is_not_redirected_or_replayed_through_the_portal(
        audited_portal: Portal, running: list[CustodianProcess]) -> None:
    domain = domain_of(audited_portal.get("/api/custodians").json())
    patient = Account.create()
    first, second = running[0], running[1]
    query = signed(bytes(patient.key), domain, "AuditQuery", {"custodian": first.address, "patient": patient.address})
    redirected = audited_portal.post(f"/api/custodians/{second.address}/audit", json=query)
    assert redirected.status_code == 403 and redirected.json()["error"]["reason"] == "wrong-custodian", redirected.text
    assert audited_portal.post(f"/api/custodians/{first.address}/audit", json=query).status_code == 200
    replayed = audited_portal.post(f"/api/custodians/{first.address}/audit", json=query)
    assert replayed.status_code == 403 and replayed.json()["error"]["reason"] == "replayed-request", replayed.text


def test_no_key_share_is_stored_without_a_grant_or_for_anothers_record(
        audited_portal: Portal, running: list[CustodianProcess], cli: Cli, observation: Path,
        client_of: Callable[[str], EHRClient], tmp_path: Path, home: Path) -> None:
    patient, hospital = client_of("patient"), client_of("hospital")
    record = bytes.fromhex(str(cli.json("record", "add", "patient", str(fresh_observation(observation, tmp_path)),
                                        wallet="lab")["recordId"])[2:])
    blobs_before = sorted(p.name for p in (home / "store").rglob("*") if p.is_file())
    body = _page_share(patient, hospital.address, [record])  # the hospital holds no grant of this patient in force
    refused = audited_portal.post("/api/keyshares", content=body,
                                  headers=_signed_headers(patient, "store-key-share", hashlib.sha256(body).digest()))
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "AccessDenied", refused.text

    # The hospital signs a share naming itself as patient over the patient's record: not its record.
    stranger_share = _page_share(patient, hospital.address, [record]).replace(
        patient.address.encode(), hospital.address.encode())
    forged = audited_portal.post("/api/keyshares", content=stranger_share, headers=_signed_headers(
        hospital, "store-key-share", hashlib.sha256(stranger_share).digest()))
    assert forged.status_code in (400, 403), forged.text
    assert sorted(p.name for p in (home / "store").rglob("*") if p.is_file()) == blobs_before
