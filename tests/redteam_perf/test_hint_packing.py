"""The registry's one-SSTORE record slot (RecordRegistry._store, getRecord, anchoredNear) against every
field at its extremes and every status, written on both sides of 256-block window edges on a real
Anvil; then a fresh reader through an observing relay finds every version asking for one window only."""

from __future__ import annotations

import os
from pathlib import Path

import requests

from ehr_client.chain.client import ChainClient
from ehr_client.chain.ids import record_id_of
from ehr_client.client import EHRClient, Identity
from ehr_client.storage import LocalStore
from tests.redteam_perf.rpc_tap import RpcTap

SCOPES = [1, 1 << 14, 1 << 63, (1 << 64) - 1, 0x8000_0000_0000_BFFF]
STATUS = {"active": 1, "superseded": 2, "tombstoned": 3}


def mine_until(rpc_url: str, chain: ChainClient, residue: int) -> None:
    """Mine empty blocks until the next transaction lands in a block ≡ `residue` (mod 256)."""
    wanted = (residue - (chain.head() + 1)) % 256
    if wanted:
        requests.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "anvil_mine", "params": [hex(wanted)]},
                      timeout=60).raise_for_status()


def content() -> tuple[bytes, bytes]:
    digest = os.urandom(32)
    return digest, b"\x01\x55\x12\x20" + digest


def test_every_field_value_and_status_survives_the_packed_slot_and_every_version_is_found_in_its_window(
        people: dict[str, EHRClient], suite: ChainClient, rpc_url: str, ids: dict[str, Identity],
        store: LocalStore, tmp_path: Path) -> None:
    patient = people["patient"]
    account = patient.identity.account
    records = suite.records.functions
    written: dict[bytes, tuple[int, int]] = {}  # id -> (scope, block of its RecordAdded)
    firsts = []
    for i, scope in enumerate(SCOPES):
        mine_until(rpc_url, suite, 255 if i % 2 == 0 else 0)
        salt = os.urandom(32)
        digest, cid = content()
        tx = suite.transact(account, records.addRecord(salt, patient.address, digest, scope, cid), action="add")
        record_id = record_id_of(patient.address, salt)
        written[record_id] = (scope, tx.block_number)
        firsts.append(record_id)
    amended = []
    for record_id in firsts[::2]:
        mine_until(rpc_url, suite, 0)
        salt = os.urandom(32)
        digest, cid = content()
        tx = suite.transact(account, records.amendRecord(record_id, salt, digest, cid), action="amend")
        new_id = record_id_of(patient.address, salt)
        written[new_id] = (written[record_id][0], tx.block_number)
        amended.append(new_id)
    for record_id in firsts[1::2] + amended[:1]:
        suite.transact(account, records.tombstone(record_id), action="erase")
    expected = {i: "superseded" for i in firsts[::2]} | {i: "tombstoned" for i in firsts[1::2]} \
        | {i: "active" for i in amended[1:]} | {amended[0]: "tombstoned"}

    for record_id, (scope, block) in written.items():
        patient_of, scope_of, status = suite.call(records.getRecord(record_id), action="get")
        assert (patient_of, int(scope_of), int(status)) == (patient.address, scope, STATUS[expected[record_id]])
        status, first, last, batch_id = suite.call(records.anchoredNear(record_id), action="near")
        assert int(status) == STATUS[expected[record_id]] and not any(batch_id)
        assert first <= block <= last and last - first == 255 and first % 256 == 0

    tap = RpcTap(rpc_url)
    try:
        reader = EHRClient(ChainClient(tap.url, suite.deployment), store, ids["stranger"],
                           state_dir=tmp_path / "state" / "reader")
        head = suite.head()
        for record_id in written:
            tap.reset()
            info = reader.get_record(record_id)
            assert (info.scope, info.status, info.block_number) == (written[record_id][0], expected[record_id],
                                                                    written[record_id][1])
            assert tap.blocks_asked(head) <= 256
    finally:
        tap.close()
