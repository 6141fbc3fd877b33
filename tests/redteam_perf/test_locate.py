"""Attacks on the registry's hint of where the event describing a record is (`anchoredNear`: its
`RecordAdded`, or its batch's `BatchAnchored`) and on the client's first read by id
(`RecordLocator.find_with`), against a real Anvil grown to tens of thousands of blocks; an observing
relay counts the blocks whose logs a fresh reader asks for."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from eth_utils import event_abi_to_log_topic

from ehr_client.batch import BatchItem
from ehr_client.batch.writer import BatchWriter
from ehr_client.chain.client import ChainClient
from ehr_client.client import EHRClient, Identity
from ehr_client.errors import ChainUnavailable, RecordNotFound
from ehr_client.storage import LocalStore
from tests.redteam_perf.rpc_tap import RpcTap

GROWN = 10_000  # blocks mined after the records: a whole-chain scan asks for about this many
RANGE = 256


def mine(rpc_url: str, blocks: int) -> None:
    requests.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "anvil_mine", "params": [hex(blocks)]},
                  timeout=300).raise_for_status()


def record_added_topic(chain: ChainClient) -> str:
    return "0x" + event_abi_to_log_topic(chain.records.events.RecordAdded().abi).hex()


def batch_anchored_topic(chain: ChainClient) -> str:
    return "0x" + event_abi_to_log_topic(chain.records.events.BatchAnchored().abi).hex()


@pytest.fixture
def tap(rpc_url: str) -> Iterator[RpcTap]:
    relay = RpcTap(rpc_url)
    yield relay
    relay.close()


@pytest.fixture
def reader_via(suite: ChainClient, ids: dict[str, Identity], store: LocalStore,
               tmp_path: Path) -> Callable[[RpcTap], EHRClient]:
    """A fresh reader (no cache, no listing cursor) whose node is reached through `tap`."""

    def make(tap: RpcTap) -> EHRClient:
        chain = ChainClient(tap.url, suite.deployment)
        return EHRClient(chain, store, ids["stranger"], state_dir=tmp_path / "state" / f"reader-{os.urandom(4).hex()}")

    return make


def patient_batch(patient: EHRClient, observation: dict[str, Any], count: int) -> list[bytes]:
    items = [BatchItem(patient.address, {**observation, "id": f"obs-{i}"}) for i in range(count)]
    return list(BatchWriter(patient, batch_size=count).write(items).record_ids)


def test_a_first_read_by_id_of_an_amended_batched_record_asks_for_a_bounded_range(
        people: dict[str, EHRClient], observation: dict[str, Any], rpc_url: str, tap: RpcTap,
        reader_via: Callable[[RpcTap], EHRClient]) -> None:
    patient = people["patient"]
    first, second = patient_batch(patient, observation, 2)
    amended = patient.amend_record(first, {**observation, "id": "obs-0", "status": "amended"}).record_id
    patient.tombstone(patient.get_record(second))
    mine(rpc_url, GROWN)
    head = patient.chain.head()

    reader = reader_via(tap)
    found = {record_id: reader.get_record(record_id).status for record_id in (first, second, amended)}

    assert found == {first: "superseded", second: "tombstoned", amended: "active"}
    assert tap.blocks_asked(head) <= 3 * RANGE, f"asked the logs of {tap.blocks_asked(head)} blocks"


def test_a_read_of_a_made_up_id_does_not_make_the_node_scan_the_chain(
        people: dict[str, EHRClient], rpc_url: str, tap: RpcTap, reader_via: Callable[[RpcTap], EHRClient]) -> None:
    mine(rpc_url, GROWN)
    head = people["patient"].chain.head()
    reader = reader_via(tap)

    for _ in range(3):
        with pytest.raises(RecordNotFound):
            reader.get_record(os.urandom(32))

    assert tap.blocks_asked(head) <= 3 * RANGE, f"3 made-up ids asked the logs of {tap.blocks_asked(head)} blocks"


def test_a_made_up_id_that_borrows_an_anchored_batch_id_is_refused_after_one_bounded_query(
        people: dict[str, EHRClient], observation: dict[str, Any], rpc_url: str, tap: RpcTap,
        reader_via: Callable[[RpcTap], EHRClient]) -> None:
    """The registry vouches only for an id's first 12 bytes (its batch); the reader checks the rest
    (the index against the leaf count, the last 16 bytes against the leaf's hash) on the event."""
    (real,) = patient_batch(people["patient"], observation, 1)
    mine(rpc_url, GROWN)
    head = people["patient"].chain.head()
    reader = reader_via(tap)
    past_the_last_leaf = real[:12] + (1).to_bytes(4, "big") + real[16:]
    wrong_check = real[:16] + bytes(16)

    for forged in (past_the_last_leaf, wrong_check):
        with pytest.raises(RecordNotFound):
            reader.get_record(forged)

    assert tap.blocks_asked(head) <= 2 * RANGE, f"2 forged ids asked the logs of {tap.blocks_asked(head)} blocks"
    assert reader.get_record(real).status == "active"


def test_a_node_that_drops_a_batchs_event_is_reported_as_such_not_as_a_missing_record(
        people: dict[str, EHRClient], observation: dict[str, Any], rpc_url: str, suite: ChainClient,
        reader_via: Callable[[RpcTap], EHRClient]) -> None:
    (record_id,) = patient_batch(people["patient"], observation, 1)
    mine(rpc_url, GROWN)
    head = people["patient"].chain.head()
    anchored = batch_anchored_topic(suite)
    tap = RpcTap(rpc_url, withhold_logs=lambda query: (query.get("topics") or [None])[0] == anchored)
    try:
        reader = reader_via(tap)
        with pytest.raises(ChainUnavailable):
            reader.get_record(record_id)
        asked = tap.blocks_asked(head)
    finally:
        tap.close()

    assert asked <= RANGE, f"asked the logs of {asked} blocks"


def test_a_node_that_drops_the_logs_of_the_named_range_is_reported_as_such_not_as_a_missing_record(
        people: dict[str, EHRClient], observation: dict[str, Any], rpc_url: str, suite: ChainClient,
        reader_via: Callable[[RpcTap], EHRClient]) -> None:
    patient = people["patient"]
    record_id = patient.add_record(patient.address, observation).record_id
    mine(rpc_url, GROWN)
    head = patient.chain.head()
    added = record_added_topic(suite)
    tap = RpcTap(rpc_url, withhold_logs=lambda query: (query.get("topics") or [None])[0] == added)
    try:
        reader = reader_via(tap)
        with pytest.raises(Exception) as raised:
            reader.get_record(record_id)
        asked = tap.blocks_asked(head)
    finally:
        tap.close()

    assert (isinstance(raised.value, RecordNotFound), asked <= 2 * RANGE) == (False, True), \
        f"told the reader {type(raised.value).__name__}: {raised.value}; asked the logs of {asked} blocks"


def test_a_node_that_hangs_between_the_two_round_trips_ends_the_read_with_a_typed_error_and_caches_nothing(
        people: dict[str, EHRClient], observation: dict[str, Any], suite: ChainClient, ids: dict[str, Identity],
        store: LocalStore, tmp_path: Path, tap: RpcTap) -> None:
    patient = people["patient"]
    record_id = patient.add_record(patient.address, observation).record_id
    reader = EHRClient(ChainClient(tap.url, suite.deployment, timeout=2.0), store, ids["stranger"],
                       state_dir=tmp_path / "state" / "hung-reader")
    tap.hang_logs.set()  # anchoredNear is answered; the log query of its range is not
    with pytest.raises(ChainUnavailable):
        reader.get_record(record_id)
    tap.hang_logs.clear()

    info = reader.get_record(record_id)
    assert (info.record_id, info.patient, info.status) == (record_id, patient.address, "active")
