"""What a stranger can make the portal store: with a fresh key alone (no gas, no registration, no
record), and with a wallet registered as a patient of its own."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from eth_account.messages import encode_typed_data

from ehr_client.chain.ids import record_id_of
from ehr_client.chain.types import Access
from ehr_client.client import EHRClient
from ehr_client.crypto import WRAPPED_KEY_SIZE
from ehr_client.keyshare import KeyShare, ShareEntry
from ehr_client.package import PackageHeader, RecordBinding
from ehr_client.portal.signed import typed_data
from ehr_client.records import Scope
from ehr_client.storage.cid import cid_for_bytes, cid_to_bytes
from tests.portal.conftest import Portal
from tests.redteam_portal3.shares import DAY, blob_path

MIB = 1024 * 1024


def _signed(account: Account, chain_id: int, registry: str, action: str, body: bytes) -> dict[str, str]:
    expires = int(time.time()) + 300
    document = typed_data(chain_id=chain_id, registry=registry, action=action, subject=hashlib.sha256(body).digest(),
                          expires=expires)
    signature = Account.sign_message(encode_typed_data(full_message=document), account.key).signature
    return {"X-EHR-Signature": "0x" + bytes(signature).hex(), "X-EHR-Expires": str(expires),
            "Content-Type": "application/octet-stream"}


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


def test_a_self_registered_stranger_cannot_fill_the_portals_disk_with_key_shares(
        portal: Portal, home: Path, anvil: Any, world: dict[str, str], client_of: Callable[[str], EHRClient]) -> None:
    chain = client_of("lab").chain  # any client: only its chain connection is used, with the stranger's key
    stranger = Account.create()
    httpx.post(anvil.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "anvil_setBalance",
                                    "params": [stranger.address, hex(10**18)]}, timeout=10).raise_for_status()
    records, consent = chain.records.functions, chain.consent.functions
    chain.transact(stranger, records.registerPatient(), action="register")
    salt = os.urandom(32)
    chain.transact(stranger, records.addRecord(salt, stranger.address, os.urandom(32), int(Scope.LAB),
                                               cid_to_bytes(cid_for_bytes(os.urandom(64)))), action="add record")
    chain.transact(stranger, consent.grant(world["hospital"], int(Scope.LAB), int(Access.READ), chain.now() + DAY,
                                           "treatment"), action="grant")
    record = record_id_of(stranger.address, salt)
    config = portal.get("/api/config").json()
    stored = []
    for _ in range(4):
        entries = tuple(ShareEntry(record, 1, 1, os.urandom(WRAPPED_KEY_SIZE))  # ~310 bytes each as JSON
                        for _ in range(MIB // 320))
        body = KeyShare(stranger.address, world["hospital"], entries).to_bytes()
        answer = portal.post("/api/keyshares", content=body, headers=_signed(
            stranger, int(config["chainId"]), config["contracts"]["RecordRegistry"], "store-key-share", body))
        if answer.status_code == 200:
            stored.append(answer.json()["cid"])
    on_disk = [cid for cid in stored if blob_path(home, cid).is_file()]
    sizes = sum(blob_path(home, cid).stat().st_size for cid in on_disk)
    for cid in on_disk:
        blob_path(home, cid).unlink()
    assert not on_disk, f"{len(on_disk)} key shares of {sizes // len(on_disk) // 1024} KiB each stored for a stranger"
