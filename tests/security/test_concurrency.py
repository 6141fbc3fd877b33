"""Several writer and reader processes against one Anvil and one Kubo, for a bounded time.

Three writers have identities of their own; two more share ONE identity (one wallet, one nonce
sequence, two processes), and a reader acts as that same identity too, so three processes race
for its nonces (ChainClient re-reads the pending nonce and retries on nonce errors). Another
reader reads as one of the single writers. Readers read acknowledged records (each read is an
on-chain access request, so they send transactions too).

Afterwards: every acknowledged write is on chain, anchored by the very transaction the writer was
told about, mined once and successfully, no two acknowledgements share a transaction or a
(sender, nonce), every acknowledged record reads back to the plaintext that was written, and
every record on chain (acknowledged or not) points at data that is in the store.

EHR_CONCURRENCY_SECONDS sets how long the processes work (default 12).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from eth_typing import HexStr

from ehr_client.chain.client import TxResult
from ehr_client.dev.node import AnvilNode
from ehr_client.storage import IpfsStore
from ehr_client.storage.kubo import KuboDaemon
from tests.security.load_worker import Report, run_reader, run_writer
from tests.security.suite import deploy_local_suite, dev_account, ehr_client_for

SECONDS = float(os.environ.get("EHR_CONCURRENCY_SECONDS", "12"))
OWN = (10, 11, 12)
SHARED = 13


@pytest.mark.slow
def test_parallel_writers_and_readers_lose_nothing_and_collide_on_no_nonce(
    start_kubo: Callable[..., KuboDaemon], tmp_path: Path,
) -> None:
    kubo = start_kubo(tmp_path / "kubo")
    with AnvilNode(log_path=tmp_path / "anvil.log", accounts=20) as node:
        suite = deploy_local_suite(node.rpc_url)
        for index in (*OWN, SHARED):
            suite.chain.transact(dev_account(index), suite.chain.records.functions.registerPatient(), action="register")
        deployment = suite.deployment.to_json()

        spawn = multiprocessing.get_context("spawn")
        with spawn.Manager() as manager:
            acknowledged = manager.list()
            results = manager.Queue()
            roles: list[tuple[Callable[..., None], str, int]] = [
                *((run_writer, f"writer-{i}", i) for i in OWN),
                (run_writer, "writer-shared-a", SHARED),
                (run_writer, "writer-shared-b", SHARED),
                (run_reader, "reader-shared", SHARED),
                (run_reader, f"reader-{OWN[0]}", OWN[0]),
            ]
            processes = [
                spawn.Process(target=target, name=name, args=(
                    name, node.rpc_url, deployment, kubo.api_url, account, str(tmp_path / "state" / name), SECONDS,
                    results, acknowledged))
                for target, name, account in roles
            ]
            started = time.monotonic()
            for process in processes:
                process.start()
            for process in processes:
                process.join(timeout=SECONDS + 180)
            elapsed = time.monotonic() - started
            hung = [p.name for p in processes if p.is_alive()]
            for process in processes:
                if process.is_alive():
                    process.kill()
            assert not hung, f"processes did not finish: {hung}"
            reports: list[Report] = [results.get(timeout=10) for _ in processes]

        crashed = {r.name: r.crashed for r in reports if r.crashed}
        assert not crashed, f"processes crashed: {crashed}"
        errors = sum((r.errors for r in reports), Counter())
        writes = [(r.account, *w) for r in reports for w in r.writes]
        reads_ok, reads_wrong = sum(r.reads_ok for r in reports), sum(r.reads_wrong for r in reports)
        print(f"\nconcurrency: {len(processes)} processes for {SECONDS:.0f}s (wall {elapsed:.1f}s): "
              f"{len(writes)} writes acknowledged, {reads_ok} reads ok, {reads_wrong} reads wrong, "
              f"errors {dict(errors) or 'none'}")
        for r in reports:
            print(f"  {r.name}: {len(r.writes)} writes ({r.reused_pending} after a retry that reused the stored "
                  f"blob, {r.given_up} given up, {r.pending_left} left pending), {r.reads_ok} reads, "
                  f"errors {dict(r.errors) or 'none'}")
        for message, count in sum((r.error_messages for r in reports), Counter()).most_common():
            print(f"    {count} x {message}")

        assert writes and reads_ok, "the load produced no writes or no reads"
        assert sum(r.given_up for r in reports) == 0, "a write failed five times in a row"
        assert reads_wrong == 0, "a read returned other bytes than were written"
        w3 = suite.chain.w3
        tx_hashes = [tx for _, _, tx, _ in writes]
        assert all(tx_hashes) and len(set(tx_hashes)) == len(tx_hashes), "two acknowledgements share a transaction"
        senders_nonces = set()
        for account, record_id, tx_hash, _ in writes:
            receipt = w3.eth.get_transaction_receipt(HexStr(tx_hash))
            assert receipt["status"] == 1
            tx = w3.eth.get_transaction(HexStr(tx_hash))
            assert tx["from"] == dev_account(account).address
            senders_nonces.add((tx["from"], tx["nonce"]))
            mined = TxResult(tx_hash, int(receipt["blockNumber"]), int(receipt["gasUsed"]), tuple(receipt["logs"]))
            anchored = suite.chain.events_in(mined, "RecordRegistry", "RecordAdded")
            assert [bytes(e["recordId"]).hex() for e in anchored] == [record_id]
        assert len(senders_nonces) == len(writes), "two acknowledged writes used the same (sender, nonce)"

        store = IpfsStore(kubo.api_url, timeout=30)
        lost, unacknowledged = [], 0
        for account in (*OWN, SHARED):
            owner = ehr_client_for(suite.chain, store, dev_account(account), tmp_path / "state" / f"check-{account}")
            mine = {record_id: digest for a, record_id, _, digest in writes if a == account}
            on_chain = {r.record_id.hex(): r for r in owner.list_records(owner.address)}
            lost += [record_id for record_id in mine if record_id not in on_chain]
            unacknowledged += len(set(on_chain) - set(mine))
            problems = [v for v in owner.verify_all(owner.address) if not v.ok]
            assert not problems, f"records of {account} point at missing or altered data: {problems}"
            for record_id, digest in mine.items():
                data = owner.read_record(bytes.fromhex(record_id)).data
                assert hashlib.sha256(data).hexdigest() == digest
        print(f"  lost acknowledged writes: {len(lost)}; anchored but not acknowledged: {unacknowledged}")
        assert lost == [], f"acknowledged writes missing from the chain: {lost}"

