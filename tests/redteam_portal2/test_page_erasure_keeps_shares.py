"""A key share stored through the portal (as the page stores it) must not outlive the erasure of a
record it holds the data key of; the wallet's share log that `EHRClient` erasure re-issues from never
names a share the page made, so the portal re-issues the shares it stored."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

from eth_account import Account
from eth_account.messages import encode_typed_data

from ehr_client.client import EHRClient
from ehr_client.client.keysource import check_header, own_data_key
from ehr_client.crypto import wrap_data_key
from ehr_client.keyshare import KeyShare, ShareEntry
from ehr_client.portal.signed import typed_data
from ehr_client.records import Scope
from ehr_client.storage.cid import cid_for_bytes
from tests.cli.conftest import Cli
from tests.portal.conftest import Portal
from tests.redteam_portal2.observations import fresh_observation
from tests.portal_audited.conftest import CustodianProcess

DAY = 86400


def _page_share(patient: EHRClient, grantee: str, record_ids: list[bytes]) -> bytes:
    """The key share bytes the page makes (keyShareFor): each record's data key wrapped to the grantee."""
    version, public = patient.directory.encryption_key_of(grantee)
    entries = []
    for record_id in record_ids:
        info = patient.get_record(record_id)
        header = patient.read_header(info.cid)
        binding = check_header(info, header)
        data_key = own_data_key(patient.identity, header, binding)
        assert data_key is not None
        entries.append(ShareEntry(record_id, header.version, version,
                                  wrap_data_key(data_key, public, associated_data=binding.associated_data)))
    return KeyShare(patient.address, grantee, tuple(entries)).to_bytes()


def _signed_headers(patient: EHRClient, action: str, subject: bytes) -> dict[str, str]:
    deployment = patient.chain.deployment
    expires = int(time.time()) + 300
    document = typed_data(chain_id=deployment.chain_id, registry=deployment.address("RecordRegistry"), action=action,
                          subject=subject, expires=expires)
    signature = Account.sign_message(encode_typed_data(full_message=document), patient.identity.account.key).signature
    return {"X-EHR-Signature": "0x" + bytes(signature).hex(), "X-EHR-Expires": str(expires),
            "Content-Type": "application/octet-stream"}


def test_erasing_in_the_portal_leaves_no_key_share_holding_the_erased_key(
        audited_portal: Portal, running: list[CustodianProcess], cli: Cli, observation: Path,
        client_of: Callable[[str], EHRClient], tmp_path: Path) -> None:
    patient, doctor = client_of("patient"), client_of("doctor")
    erased, kept = (
        bytes.fromhex(str(cli.json("record", "add", "patient", str(fresh_observation(observation, tmp_path)),
                                   wallet="lab")["recordId"])[2:])
        for _ in range(2))
    patient.grant(doctor.address, int(Scope.LAB), expires_at=patient.chain.now() + 30 * DAY, share_keys=False)

    body = _page_share(patient, doctor.address, [erased, kept])
    stored = audited_portal.post("/api/keyshares", content=body,
                                 headers=_signed_headers(patient, "store-key-share", hashlib.sha256(body).digest()))
    assert stored.status_code == 200, stored.text
    share_cid = stored.json()["cid"]

    # The page's erasure: the wallet tombstones, then the portal unpins.
    patient.tombstone(patient.get_record(erased))
    answer = audited_portal.post(f"/api/erase/0x{erased.hex()}")
    assert answer.status_code == 200, answer.text

    left = audited_portal.get(f"/api/blobs/{share_cid}")
    holds_erased_key = left.status_code == 200 and any(
        e.record_id == erased for e in KeyShare.from_bytes(left.content).entries)
    assert not holds_erased_key, "the erased record's data key is still stored, wrapped to the grantee"
    assert left.status_code == 404, left.text

    # The share is re-issued with what the grant still covers, for the patient to hand over again.
    (reissued,) = answer.json()["reissuedShares"]
    assert (reissued["grantee"], reissued["old"], reissued["dropped"]) == (doctor.address, share_cid, 1)
    again = KeyShare.from_bytes(audited_portal.get(f"/api/blobs/{reissued['new']}").content)
    assert [e.record_id for e in again.entries] == [kept]

    # Asking again (an erase whose unpin was interrupted is finished this way) changes nothing, and is
    # told the same re-issue (from the portal's log: whoever asked first, the patient still learns it).
    repeat = audited_portal.post(f"/api/erase/0x{erased.hex()}")
    assert repeat.status_code == 200 and repeat.json()["reissuedShares"] == [reissued], repeat.text
    assert audited_portal.get(f"/api/blobs/{reissued['new']}").status_code == 200


def test_a_key_share_holding_an_erased_key_is_not_stored_afterwards(
        audited_portal: Portal, running: list[CustodianProcess], cli: Cli, observation: Path,
        client_of: Callable[[str], EHRClient], tmp_path: Path) -> None:
    """The page made the share before the erase and uploads it after (a second tab, a retry)."""
    patient, doctor = client_of("patient"), client_of("doctor")
    erased = bytes.fromhex(str(cli.json("record", "add", "patient", str(fresh_observation(observation, tmp_path)),
                                        wallet="lab")["recordId"])[2:])
    patient.grant(doctor.address, int(Scope.LAB), expires_at=patient.chain.now() + 30 * DAY, share_keys=False)
    body = _page_share(patient, doctor.address, [erased])
    patient.tombstone(patient.get_record(erased))
    assert audited_portal.post(f"/api/erase/0x{erased.hex()}").status_code == 200

    refused = audited_portal.post("/api/keyshares", content=body,
                                  headers=_signed_headers(patient, "store-key-share", hashlib.sha256(body).digest()))
    assert refused.status_code == 410 and refused.json()["error"]["type"] == "RecordErased", refused.text
    assert audited_portal.get(f"/api/blobs/{cid_for_bytes(body)}").status_code == 404
