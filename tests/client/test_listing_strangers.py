"""Listings of addresses anyone can name (the portal's unauthenticated GET /api/records/{patient}):
an address that never registered as a patient has no records, so its listing asks the node for no
logs and leaves no file; a registered patient with nothing anchored yet keeps a cursor like any other,
so asking again does not scan the chain again."""

from __future__ import annotations

import os
from pathlib import Path

from eth_utils import to_checksum_address

from bench.rpc import RpcCounter
from ehr_client.chain.client import ChainClient
from ehr_client.client import EHRClient, Identity
from ehr_client.storage import LocalStore
from tests.client.conftest import lab_result, mine


def _log_queries(counter: RpcCounter, start: int) -> list[dict[str, str]]:
    return [c["params"][0] for trip in counter.calls[start:] for c in trip if c.get("method") == "eth_getLogs"]


def _stranger_reader(suite: ChainClient, counter: RpcCounter, ids: dict[str, Identity], store: LocalStore,
                     state: Path) -> EHRClient:
    return EHRClient(ChainClient(counter.url, suite.deployment), store, ids["stranger"], state_dir=state,
                     listing_depth=3)


def test_listing_made_up_addresses_asks_no_logs_and_leaves_no_file(suite, ids, store, tmp_path):
    counter = RpcCounter(suite.rpc_url)
    try:
        reader = _stranger_reader(suite, counter, ids, store, tmp_path / "portal")
        mine(suite, 200)
        reader.chain.ensure_chain()  # the node's identity is checked once per client, not per listing
        mark = len(counter.calls)

        listings = [reader.list_records_report(to_checksum_address(os.urandom(20))) for _ in range(5)]

        assert all(not listing.records and not listing.skipped for listing in listings)
        assert _log_queries(counter, mark) == []
        assert [[c["method"] for c in trip] for trip in counter.calls[mark:]] == [["eth_call"]] * 5
        assert not [p for p in (tmp_path / "portal").rglob("listing-*/*") if p.is_file()]
    finally:
        counter.close()


def test_a_registered_patient_without_records_is_scanned_once_then_from_its_cursor(
        people, suite, ids, store, tmp_path):
    newcomer = people["hospital"]  # registers as a patient of its own, writes nothing
    newcomer.register_patient()
    counter = RpcCounter(suite.rpc_url)
    try:
        reader = _stranger_reader(suite, counter, ids, store, tmp_path / "portal")
        mine(suite, 50)
        mark = len(counter.calls)
        assert reader.list_records(newcomer.address) == []
        first = _log_queries(counter, mark)
        assert {int(q["fromBlock"], 16) for q in first} == {suite.deployment.deploy_block}

        mine(suite, 50)
        mark = len(counter.calls)
        assert reader.list_records(newcomer.address) == []
        again = _log_queries(counter, mark)
        assert len(again) == 2 and min(int(q["fromBlock"], 16) for q in again) > suite.deployment.deploy_block + 40

        written = newcomer.add_record(newcomer.address, lab_result("first", 5.0))
        assert [r.record_id for r in reader.list_records(newcomer.address)] == [written.record_id]
    finally:
        counter.close()
