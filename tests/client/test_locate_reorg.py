"""A long-running reader (the portal, a custodian: default confirmations 0) remembers the facts of a
single record it located. After a reorganisation drops the record and its author anchors other
content under the same id (the same salt), the reader must not serve what it remembered."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import requests

from ehr_client.chain.client import ChainClient
from ehr_client.client import EHRClient, Identity
from ehr_client.storage import LocalStore
from tests.client.conftest import lab_result, mine


def _rpc(url: str, method: str, *params: Any) -> Any:
    answer = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
                           timeout=60).json()
    assert "error" not in answer, answer
    return answer["result"]


def test_a_reader_does_not_serve_a_single_record_the_chain_replaced_under_the_same_id(
        people: dict[str, EHRClient], suite: ChainClient, ids: dict[str, Identity], store: LocalStore,
        tmp_path: Path) -> None:
    patient = people["patient"]
    reader = EHRClient(ChainClient(suite.rpc_url, suite.deployment), store, ids["stranger"],
                       state_dir=tmp_path / "reader")
    snapshot = _rpc(suite.rpc_url, "evm_snapshot")
    written = patient.add_record(patient.address, lab_result("before the fork", 5.0))
    reader.chain.head()  # a busy reader has seen the head: what it locates is remembered at once
    assert reader.get_record(written.record_id).content_hash == written.content_hash

    assert _rpc(suite.rpc_url, "evm_revert", snapshot) is True
    mine(suite, 300)  # the replacement lands in another 256-block range
    other = patient.add_record(patient.address, lab_result("another record", 9.0))
    same_id = patient.chain.records.functions.addRecord(written.salt, patient.address, os.urandom(32), other.scope,
                                                        b"\x01\x55\x12\x20" + os.urandom(32))
    patient.chain.transact(patient.identity.account, same_id, action="anchor record")

    again = reader.get_record(written.record_id)
    assert again.content_hash != written.content_hash
    assert again.block_number > written.tx.block_number
