"""/api/erase re-issues the key shares the portal stored without an erased record's entries and
unpins the old ones. Anyone may call it once the chain shows the tombstones, and what it re-issued
is said only in that one answer."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from ehr_client.client import EHRClient
from ehr_client.keyshare import KeyShare
from ehr_client.records import Scope
from tests.cli.conftest import Cli
from tests.portal.conftest import Portal
from tests.redteam_portal2.test_page_erasure_keeps_shares import _page_share, _signed_headers
from tests.redteam_portal3.shares import DAY, blob_path, lab_results, store_page_share


def test_a_stranger_calling_erase_first_does_not_hide_the_reissued_share_from_the_patient(
        portal: Portal, cli: Cli, observation: Path, client_of: Callable[[str], EHRClient], tmp_path: Path) -> None:
    patient, doctor = client_of("patient"), client_of("doctor")
    erased, kept = lab_results(cli, observation, tmp_path, 2)
    patient.grant(doctor.address, int(Scope.LAB), expires_at=patient.chain.now() + 30 * DAY, share_keys=False)
    share = store_page_share(portal, patient, doctor.address, [erased, kept])

    patient.tombstone(patient.get_record(erased))  # the page's wallet step; the portal call comes next
    # A stranger watching RecordTombstoned events asks first: no signature, no account.
    assert portal.post(f"/api/erase/0x{erased.hex()}").status_code == 200

    page = portal.post(f"/api/erase/0x{erased.hex()}")  # the page's own call, a moment later
    assert page.status_code == 200, page.text
    # The doctor's share is gone: only the re-issued one still opens `kept`, so the patient must learn it.
    assert portal.get(f"/api/blobs/{share}").status_code == 404
    told = [(r["grantee"], r["old"]) for r in page.json()["reissuedShares"]]
    assert told == [(doctor.address, share)], "the patient is never told the doctor's new key share"


def test_one_damaged_key_share_does_not_stop_the_erasure(
        portal: Portal, cli: Cli, observation: Path, client_of: Callable[[str], EHRClient], tmp_path: Path,
        home: Path) -> None:
    patient, doctor = client_of("patient"), client_of("doctor")
    other, erased, kept = lab_results(cli, observation, tmp_path, 3)
    patient.grant(doctor.address, int(Scope.LAB), expires_at=patient.chain.now() + 30 * DAY, share_keys=False)
    damaged = store_page_share(portal, patient, doctor.address, [other])
    holding = store_page_share(portal, patient, doctor.address, [erased, kept])
    path = blob_path(home, damaged)
    intact = path.read_bytes()
    flipped = bytearray(intact)
    flipped[len(flipped) // 2] ^= 0x01  # one bit on the portal's disk, in a share that does not even hold `erased`
    path.write_bytes(bytes(flipped))
    try:
        patient.tombstone(patient.get_record(erased))
        ciphertext = patient.get_record(erased).cid
        answer = portal.post(f"/api/erase/0x{erased.hex()}")
    finally:
        path.write_bytes(intact)  # the operator restores it (the world's later erasures need it whole)

    assert portal.get(f"/api/blobs/{ciphertext}").status_code == 404, \
        f"the erased record's ciphertext is still served ({answer.status_code}: {answer.text[:200]})"
    still = portal.get(f"/api/blobs/{holding}")
    assert still.status_code == 404 or all(e.record_id != erased for e in KeyShare.from_bytes(still.content).entries), \
        "a key share holding the erased record's key is still served"


def test_a_key_share_made_before_an_erasure_is_not_stored_after_it(
        portal: Portal, cli: Cli, observation: Path, client_of: Callable[[str], EHRClient], tmp_path: Path) -> None:
    patient, doctor = client_of("patient"), client_of("doctor")
    erased, kept = lab_results(cli, observation, tmp_path, 2)
    patient.grant(doctor.address, int(Scope.LAB), expires_at=patient.chain.now() + 30 * DAY, share_keys=False)
    stale = _page_share(patient, doctor.address, [erased, kept])  # sealed in a tab opened before the erasure
    headers = _signed_headers(patient, "store-key-share", hashlib.sha256(stale).digest())

    patient.tombstone(patient.get_record(erased))
    assert portal.post(f"/api/erase/0x{erased.hex()}").status_code == 200

    late = portal.post("/api/keyshares", content=stale, headers=headers)  # that tab's upload lands now
    assert late.status_code != 200, f"stored as {late.json()['cid']}: the erased record's key is served again"


def test_a_stranger_cannot_make_erase_drop_a_live_records_key(
        portal: Portal, cli: Cli, observation: Path, client_of: Callable[[str], EHRClient], tmp_path: Path) -> None:
    patient, doctor = client_of("patient"), client_of("doctor")
    live, other = lab_results(cli, observation, tmp_path, 2)
    patient.grant(doctor.address, int(Scope.LAB), expires_at=patient.chain.now() + 30 * DAY, share_keys=False)
    share = store_page_share(portal, patient, doctor.address, [live, other])
    ciphertext = patient.get_record(live).cid

    for spelling in (f"0x{live.hex()}", f"0x{live.hex().upper()}", live.hex()):
        refused = portal.post(f"/api/erase/{spelling}")
        assert refused.status_code == 403 and refused.json()["error"]["type"] == "AccessDenied", refused.text
    served = portal.get(f"/api/blobs/{share}")
    assert served.status_code == 200
    assert [e.record_id for e in KeyShare.from_bytes(served.content).entries] == [live, other]
    assert portal.get(f"/api/blobs/{ciphertext}").status_code == 200
