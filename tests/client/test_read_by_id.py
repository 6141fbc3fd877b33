"""A read by record id is located and its access request planned in one round trip, and a located
record's facts are remembered: none of that may skip a check. Permission is decided by the chain on
every read (the access request's gas estimate, then the mined request itself), erasure is seen at
once, and nothing is fetched or decrypted for a read the chain refuses."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.rpc import RpcCounter
from ehr_client.chain.client import LOG_PAGE_BLOCKS, ChainClient
from ehr_client.chain.txplan import plan, plan_requests
from ehr_client.client import EHRClient, Identity
from ehr_client.errors import AccessDenied, EHRError, RecordErased, TransactionReverted
from ehr_client.records import Scope
from ehr_client.storage import Cid, LocalStore
from tests.client.conftest import mine

LAB = int(Scope.LAB)
DAY = 86_400


class CountedStore(LocalStore):
    """A real LocalStore that counts the blobs read from it."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.gets = 0

    def get(self, cid: Cid) -> bytes:
        self.gets += 1
        return super().get(cid)


def _rpc(suite: ChainClient, method: str, *params: Any) -> Any:
    return suite.w3.provider.make_request(method, list(params))["result"]  # type: ignore[arg-type]


def _sent(suite: ChainClient, address: str) -> int:
    return int(_rpc(suite, "eth_getTransactionCount", address, "pending"), 16)


def _record_with_reader(people: dict[str, EHRClient], observation: dict[str, Any]) -> tuple[bytes, Cid]:
    """The patient's own lab record, the doctor granted LAB read, and the key share for the doctor."""
    patient, doctor = people["patient"], people["doctor"]
    written = patient.add_record(patient.address, observation)
    patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + DAY, share_keys=False)
    share, _ = patient.share_keys(doctor.address, LAB)
    return written.record_id, share


def test_a_reader_without_a_grant_is_denied_by_id_before_anything_is_sent_or_fetched(
    people: dict[str, EHRClient], client_for: Callable[..., EHRClient], suite: ChainClient, tmp_path: Path,
    observation: dict[str, Any],
) -> None:
    patient = people["patient"]
    written = patient.add_record(patient.address, observation)
    store = CountedStore(tmp_path / "store")
    hospital = client_for("hospital", blob_store=store)
    sent = _sent(suite, hospital.address)
    with pytest.raises(AccessDenied, match="no valid grant covers its scope"):
        hospital.read_record(written.record_id)
    assert _sent(suite, hospital.address) == sent  # no access request was sent
    assert store.gets == 0  # and no ciphertext was fetched


def test_a_record_read_before_is_refused_after_the_grant_is_revoked_and_after_it_is_erased(
    people: dict[str, EHRClient], suite: ChainClient, observation: dict[str, Any],
) -> None:
    patient, doctor = people["patient"], people["doctor"]
    record_id, share = _record_with_reader(people, observation)
    assert doctor.read_record(record_id, key_share=share).resource()["valueQuantity"]["value"] == 5.40
    patient.revoke(doctor.address)
    sent = _sent(suite, doctor.address)
    with pytest.raises(AccessDenied):
        doctor.read_record(record_id, key_share=share)
    assert _sent(suite, doctor.address) == sent
    patient.tombstone(patient.get_record(record_id))
    with pytest.raises(RecordErased):
        patient.read_record(record_id)


def test_an_access_request_the_chain_reverts_is_a_typed_error_and_nothing_is_decrypted(
    people: dict[str, EHRClient], suite: ChainClient, ids: dict[str, Identity], observation: dict[str, Any],
) -> None:
    """The grant is in force when the reader plans its access request, and the patient's revocation
    is mined ahead of it in the same block (a higher tip): the request reverts on chain."""
    patient, doctor = people["patient"], people["doctor"]
    record_id, share = _record_with_reader(people, observation)
    outcome: list[object] = []

    def read() -> None:
        try:
            outcome.append(doctor.read_record(record_id, key_share=share))
        except EHRError as exc:
            outcome.append(exc)

    _rpc(suite, "evm_setAutomine", False)
    reader = threading.Thread(target=read)
    try:
        sent = _sent(suite, doctor.address)
        reader.start()
        deadline = time.monotonic() + 60
        while _sent(suite, doctor.address) == sent and reader.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _sent(suite, doctor.address) == sent + 1, outcome  # the access request waits in the pool
        revoke = suite.consent.functions.revoke(doctor.address)
        to, data = str(revoke.address), str(revoke._encode_transaction_data())
        planned = plan(1, suite.batch(plan_requests(patient.address, [(to, data)])), action="revoke")
        tip = 10 * planned.fees["maxPriorityFeePerGas"]
        tx = {"to": to, "data": data, "value": 0, "gas": planned.gas[0], "nonce": planned.nonce,
              "chainId": suite.chain_id, "maxPriorityFeePerGas": tip,
              "maxFeePerGas": planned.fees["maxFeePerGas"] + tip}
        suite.send_raw(ids["patient"].account.sign_transaction(tx).raw_transaction)
        _rpc(suite, "evm_mine")
        reader.join(timeout=60)
    finally:
        _rpc(suite, "evm_setAutomine", True)
        reader.join(timeout=60)
    assert len(outcome) == 1 and isinstance(outcome[0], (TransactionReverted, AccessDenied)), outcome


def test_a_first_read_by_id_on_a_long_chain_asks_the_logs_of_256_blocks_not_the_chain(
    people: dict[str, EHRClient], suite: ChainClient, ids: dict[str, Identity], store: LocalStore, tmp_path: Path,
    observation: dict[str, Any],
) -> None:
    """The registry says which 256 blocks hold a record's event (`anchoredNear`); the reader asks
    for those only. Versions far apart are each found in their own range, and read whole."""
    patient, doctor = people["patient"], people["doctor"]
    record_id, share = _record_with_reader(people, observation)
    mine(suite, LOG_PAGE_BLOCKS + 500)  # longer than one page of logs: no whole-chain scan in one trip
    amended = patient.amend_record(record_id, {**observation, "valueQuantity": {"value": 6.1, "unit": "mmol/L"}})
    mine(suite, 300)
    new_share, _ = patient.share_keys(doctor.address, LAB)
    counter = RpcCounter(suite.rpc_url)
    try:
        reader = EHRClient(ChainClient(counter.url, suite.deployment), store, ids["doctor"],
                           state_dir=tmp_path / "fresh-doctor")
        reader.chain.head()  # the client knows the chain is long, as any client that did anything would
        with counter.counting():
            values = [reader.read_record(r, key_share=s).resource()["valueQuantity"]["value"]
                      for r, s in ((record_id, share), (amended.record_id, new_share))]
        ranges = [(int(c["params"][0]["fromBlock"], 16), int(c["params"][0]["toBlock"], 16))
                  for trip in counter.calls for c in trip if c.get("method") == "eth_getLogs"]
    finally:
        counter.close()
    assert values == [5.40, 6.1]
    blocks = [patient.get_record(r).block_number for r in (record_id, amended.record_id)]
    assert len(ranges) == 2 and all(end - start == 255 for start, end in ranges), ranges
    assert all(start <= block <= end for (start, end), block in zip(ranges, blocks, strict=True))
