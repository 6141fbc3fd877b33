"""What a stranger with a fresh key (no gas, no registration, no record) can make the portal store."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from ehr_client.package import PackageHeader, RecordBinding
from ehr_client.portal.signed import typed_data
from tests.portal.conftest import Portal
from tests.redteam_portal3.shares import blob_path

MIB = 1024 * 1024


def _signed(account: Account, chain_id: int, registry: str, action: str, body: bytes) -> dict[str, str]:
    expires = int(time.time()) + 300
    document = typed_data(chain_id=chain_id, registry=registry, action=action, subject=hashlib.sha256(body).digest(),
                          expires=expires)
    signature = Account.sign_message(encode_typed_data(full_message=document), account.key).signature
    return {"X-EHR-Signature": "0x" + bytes(signature).hex(), "X-EHR-Expires": str(expires),
            "Content-Type": "application/octet-stream"}


@pytest.mark.xfail(strict=True, reason=(
    "ehr_client/portal/app.py package: /api/packages stores any bound header signed by the patient it names, "
    "and nothing asks the chain whether that patient is registered, holds the record being rotated or has "
    "stored anything before: a throwaway key stores 32 MiB a request, without limit, until gc's 24 h grace"))
def test_a_throwaway_key_cannot_fill_the_portals_disk_with_packages(portal: Portal, home: Path) -> None:
    config = portal.get("/api/config").json()
    chain_id, registry = int(config["chainId"]), config["contracts"]["RecordRegistry"]
    stranger = Account.create()  # never funded, never registered, no record anywhere
    me = bytes.fromhex(stranger.address[2:])
    stored = []
    for _ in range(4):
        binding = RecordBinding(os.urandom(32), 1, me, 1, me)
        body = PackageHeader(1, "application/octet-stream", (), binding=binding).to_bytes() + os.urandom(MIB)
        answer = portal.post("/api/packages", content=body,
                             headers=_signed(stranger, chain_id, registry, "store-package", body))
        if answer.status_code == 200:
            stored.append(answer.json()["cid"])
    on_disk = [cid for cid in stored if blob_path(home, cid).is_file()]
    for cid in on_disk:
        blob_path(home, cid).unlink()  # the operator's cleanup, so the world's store stays as it was
    assert not on_disk, f"{len(on_disk)} MiB of a stranger's bytes were stored (each request up to 32 MiB)"
