"""What the attacks here need of the world: fresh lab results for the CLI patient, a key share made
as the page makes it and stored through the portal as the page stores it, and the store's files."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ehr_client.client import EHRClient
from ehr_client.storage.local import LocalStore
from tests.cli.conftest import Cli
from tests.portal.conftest import Portal
from tests.redteam_portal2.observations import fresh_observation
from tests.redteam_portal2.test_page_erasure_keeps_shares import _page_share, _signed_headers

DAY = 86400


def lab_results(cli: Cli, observation: Path, directory: Path, count: int) -> list[bytes]:
    """`count` new lab results the lab writes for the CLI patient; their record ids."""
    return [bytes.fromhex(str(cli.json("record", "add", "patient", str(fresh_observation(observation, directory)),
                                       wallet="lab")["recordId"])[2:]) for _ in range(count)]


def store_page_share(portal: Portal, patient: EHRClient, grantee: str, record_ids: list[bytes]) -> str:
    """The page's "grant with keys" second half: a key share of `record_ids`, signed, stored; its CID."""
    body = _page_share(patient, grantee, record_ids)
    stored = portal.post("/api/keyshares", content=body,
                         headers=_signed_headers(patient, "store-key-share", hashlib.sha256(body).digest()))
    assert stored.status_code == 200, stored.text
    return str(stored.json()["cid"])


def blob_path(home: Path, cid: str) -> Path:
    """Where the world's local store (the portal's too) keeps a blob."""
    return LocalStore(home / "store").path_for(cid)  # type: ignore[arg-type]
