"""Attacks on batched record ids that name their batch (the id starts with its batch's 12-byte tag and
carries its leaf index; `RecordRegistry.anchoredNear` answers for the batch a tag names, and the reader
asks the logs of those 256 blocks only): a node that answers more than was asked, reorganisations
between a reader's look-ups, and a writer anchoring under another's batch key. Readers reach the real
Anvil directly or through an observing relay (tests/redteam_perf/rpc_tap.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from eth_utils import event_abi_to_log_topic

from ehr_client.chain.client import ChainClient
from ehr_client.client import EHRClient, Identity
from ehr_client.errors import EHRError, RecordNotFound
from ehr_client.storage import LocalStore
from tests.redteam_perf.rpc_tap import RpcTap
from tests.redteam_perf.test_locate import RANGE, mine, patient_batch, reader_via, tap  # noqa: F401  (fixtures)


class TopicIgnoringTap(RpcTap):
    """A node (buggy or hostile) that ignores the indexed-argument filters of `BatchAnchored` log
    queries and answers every such event of the range, all of them genuine."""

    def __init__(self, upstream: str, topic: str) -> None:
        super().__init__(upstream)
        self.topic = topic

    def forward(self, payload: Any) -> Any:
        for request in payload if isinstance(payload, list) else [payload]:
            if request.get("method") == "eth_getLogs":
                query = request["params"][0]
                if (query.get("topics") or [None])[0] == self.topic:
                    query["topics"] = query["topics"][:1]
        return super().forward(payload)


def test_a_node_answering_other_batches_of_the_range_does_not_make_a_real_record_vanish(
        people: dict[str, EHRClient], observation: dict[str, Any], rpc_url: str, suite: ChainClient,
        reader_via: Callable[[RpcTap], EHRClient]) -> None:
    """Failed on cfd5c32 (BatchIndex._query took the first event of the answer: RecordNotFound); main's 4e4d4f8
    fixed it."""
    patient = people["patient"]
    mine(rpc_url, RANGE - patient.chain.head() % RANGE + 1)  # both batches in one 256-block range
    patient_batch(patient, observation, 1)
    (record_id,) = patient_batch(patient, {**observation, "status": "amended"}, 1)
    anchored = "0x" + event_abi_to_log_topic(suite.records.events.BatchAnchored().abi).hex()
    node = TopicIgnoringTap(rpc_url, anchored)
    try:
        found = reader_via(node).get_record(record_id).record_id
    finally:
        node.close()
    assert found == record_id


def _rpc(url: str, method: str, *params: Any) -> Any:
    answer = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
                           timeout=60).json()
    assert "error" not in answer, answer
    return answer["result"]


def test_a_batch_dropped_by_a_reorganisation_is_not_found_any_more_by_a_reader_that_saw_it(
        people: dict[str, EHRClient], observation: dict[str, Any], rpc_url: str, suite: ChainClient,
        ids: dict[str, Identity], store: LocalStore, tmp_path: Path) -> None:
    """A long-running reader (a portal, a custodian) that waits for 3 confirmations finds a batched
    record just anchored; the chain reorganises 1 block deep without the batch (anvil's snapshot and
    revert) and a new batch is anchored in its place. The reader does not answer from what it saw:
    the dropped record is RecordNotFound, the new one reads with its own content."""
    patient = people["patient"]
    reader = EHRClient(ChainClient(rpc_url, suite.deployment, confirmations=3), store, ids["stranger"],
                       state_dir=tmp_path / "state" / "confirming-reader")
    before = _rpc(rpc_url, "evm_snapshot")
    (dropped,) = patient_batch(patient, observation, 1)
    assert reader.get_record(dropped).record_id == dropped

    assert _rpc(rpc_url, "evm_revert", before) is True
    (replacing,) = patient_batch(patient, {**observation, "status": "amended"}, 1)
    mine(rpc_url, 2 * RANGE)

    with pytest.raises(RecordNotFound):
        reader.get_record(dropped)
    assert reader.get_record(replacing).record_id == replacing


def test_a_reader_with_default_settings_does_not_serve_a_batch_the_chain_dropped(
        people: dict[str, EHRClient], observation: dict[str, Any], rpc_url: str, tap: RpcTap,
        reader_via: Callable[[RpcTap], EHRClient]) -> None:
    """As above, with the reader a portal or custodian process builds (no confirmations setting). Failed on
    cfd5c32 (BatchIndex.locate_in answered from its cache before anchoredNear's answer); main's 4e4d4f8 fixed it."""
    patient = people["patient"]
    before = _rpc(rpc_url, "evm_snapshot")
    (dropped,) = patient_batch(patient, observation, 1)
    reader = reader_via(tap)
    assert reader.get_record(dropped).record_id == dropped

    assert _rpc(rpc_url, "evm_revert", before) is True
    patient_batch(patient, {**observation, "status": "amended"}, 1)
    mine(rpc_url, 2 * RANGE)

    with pytest.raises(RecordNotFound):
        reader.get_record(dropped)


def test_a_batch_key_taken_from_the_chain_gives_its_taker_a_tag_of_his_own(
        people: dict[str, EHRClient], writer_lab: EHRClient, observation: dict[str, Any],
        reader_via: Callable[[RpcTap], EHRClient], tap: RpcTap) -> None:
    """The lab (a writer for the patient) reads the patient's batch key from the BatchAnchored event
    and anchors a batch of its own under it, for the same patient, with a made-up root: its batch
    gets another tag, the patient cannot anchor under the key twice, and the patient's record still
    resolves to the patient's own batch for a fresh reader."""
    patient = people["patient"]
    (record_id,) = patient_batch(patient, observation, 1)
    original = patient.get_record(record_id)
    assert original.batch is not None
    key, lab_scope = original.batch.batch_key, original.scope

    def anchor(client: EHRClient) -> Any:
        fn = client.chain.records.functions.anchorBatch(key, patient.address, lab_scope, os.urandom(32), 1,
                                                        os.urandom(32), b"\x01\x55\x12\x20" + os.urandom(32))
        return client.chain.transact(client.identity.account, fn, action="anchor batch")

    (taken,) = writer_lab.chain.events_in(anchor(writer_lab), "RecordRegistry", "BatchAnchored")
    assert bytes(taken["batchId"])[:12] != record_id[:12]
    with pytest.raises(EHRError):
        anchor(patient)
    found = reader_via(tap).get_record(record_id)
    assert (found.author, found.content_hash, found.batch) == (patient.address, original.content_hash, original.batch)
