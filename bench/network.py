"""`python -m bench.network`: a 4-validator geth Clique network (period 1 s and 2 s) against Anvil.

For each chain, in the same run: blocks per second while measuring, and the inclusion latency of a
plain value transfer (signed locally, sent to the chain's RPC node, receipt polled every 20 ms),
one transaction at a time, p50 and p95. Then the client's own work on the same chain: a lab's
single writes and a doctor's reads (each a transaction: the access request), p50 and p95, and one
batch of records (its latency and records/s). Writes are reported done one block deep on Clique. Anvil mines each transaction at once, so its latency is the
round trips alone, and it makes blocks only for transactions (no blocks/s figure). On Clique a
transaction waits for the next block: about half a period on average plus the sealing delay of an
out-of-turn signer, bounded by the period. Writes bench/results/network.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from rich.console import Console
from rich.table import Table
from web3 import HTTPProvider, Web3
from web3.exceptions import TransactionIndexingInProgress, TransactionNotFound
from web3.middleware import ExtraDataToPOAMiddleware

from bench._records import observation
from bench._world import DAY, World
from bench.report import write_json
from ehr_client.batch import BatchItem, BatchWriter
from ehr_client.records import Scope
from ehr_client.dev.geth import CliqueNetwork
from ehr_client.errors import ChainStalled, EHRError
from ehr_client.dev.node import DEV_MNEMONIC, AnvilNode

RESULTS = Path(__file__).resolve().parent / "results" / "network.json"
SINK = "0x000000000000000000000000000000000000dEaD"


def _sender() -> LocalAccount:
    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(DEV_MNEMONIC, account_path="m/44'/60'/0'/0/0")


def _web3(url: str) -> Web3:
    w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 10}))
    w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    return w3


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure_chain(url: str, txs: int, *, deadline_s: float = 30.0) -> dict[str, Any]:
    """Latency of `txs` sequential transfers and the chain's block rate over the same window."""
    w3, sender = _web3(url), _sender()
    chain_id, nonce = w3.eth.chain_id, w3.eth.get_transaction_count(sender.address)
    latencies: list[float] = []
    head_start, began = w3.eth.block_number, time.perf_counter()
    for i in range(txs):
        raw = sender.sign_transaction({"to": SINK, "value": 1, "chainId": chain_id, "gas": 21_000, "nonce": nonce + i,
                                       "maxFeePerGas": 10 * 10**9, "maxPriorityFeePerGas": 10**9}).raw_transaction
        sent = time.perf_counter()
        tx_hash = w3.eth.send_raw_transaction(raw)
        while _pending(w3, tx_hash):
            if time.perf_counter() - sent > deadline_s:
                raise ChainStalled(f"transaction {i} not included within {deadline_s:.0f}s on {url}")
            time.sleep(0.02)
        latencies.append((time.perf_counter() - sent) * 1000)
    elapsed = time.perf_counter() - began
    blocks = w3.eth.block_number - head_start
    return {"txs": txs, "p50_ms": round(statistics.median(latencies), 1),
            "p95_ms": round(_percentile(latencies, 0.95), 1), "max_ms": round(max(latencies), 1),
            "blocks": blocks, "seconds": round(elapsed, 1), "blocks_per_s": round(blocks / elapsed, 3)}


def _timed_ms(action: Any, count: int) -> list[float]:
    samples = []
    for i in range(count):
        start = time.perf_counter()
        action(i)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def _summary(samples: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(samples), 1), "p95_ms": round(_percentile(samples, 0.95), 1)}


def measure_client(world: World, *, writes: int, reads: int, batch: int) -> dict[str, Any]:
    """A lab's single writes, a doctor's reads and one batched write on `world`'s chain."""
    patient, lab, doctor = (world.client(name, "network") for name in ("patient", "lab", "doctor"))
    patient.register_patient()
    for client in (patient, lab, doctor):
        client.publish_key()
    patient.grant(lab.address, int(Scope.LAB), access="amend", expires_at=patient.chain.now() + DAY, share_keys=False)
    written = []
    write_ms = _timed_ms(lambda i: written.append(lab.add_record(patient.address, observation(i))), writes)
    patient.grant(doctor.address, int(Scope.LAB), expires_at=patient.chain.now() + DAY, share_keys=False)
    share, _ = patient.share_keys(doctor.address, int(Scope.LAB))
    target = written[0].record_id
    if doctor.read_record(target, key_share=share).data != lab.read_record(target).data:
        raise EHRError("the benchmark's reader decrypted something else than the writer wrote")
    read_ms = _timed_ms(lambda i: doctor.read_record(target, key_share=share), reads)
    start = time.perf_counter()
    summary = BatchWriter(lab, batch_size=batch).write(
        BatchItem(patient.address, observation(10_000 + i)) for i in range(batch))
    batch_s = time.perf_counter() - start
    if len(summary.record_ids) != batch:
        raise EHRError(f"the batched write anchored {len(summary.record_ids)} of {batch} records")
    return {"write": {"count": writes, **_summary(write_ms)}, "read": {"count": reads, **_summary(read_ms)},
            "batch": {"records": batch, "seconds": round(batch_s, 2), "records_per_s": round(batch / batch_s, 1)}}


def _pending(w3: Web3, tx_hash: HexBytes) -> bool:
    try:
        w3.eth.get_transaction_receipt(tx_hash)
    except (TransactionNotFound, TransactionIndexingInProgress):  # geth indexes for a while after start
        return True
    return False


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    funded = {address: 10**24 for address in {_sender().address, *World.funded()}}
    client_load = {"writes": args.writes, "reads": args.reads, "batch": args.batch}
    with tempfile.TemporaryDirectory(prefix="ehr-bench-net-") as tmp:
        root = Path(tmp)
        with AnvilNode(log_path=root / "anvil.log", accounts=len(funded)) as anvil:
            anvil_figures = measure_chain(anvil.rpc_url, args.txs)
            anvil_figures["blocks_per_s"] = None  # automine: a block per transaction, none otherwise
            _progress("anvil: the client's writes, reads and a batch")
            with World(anvil.rpc_url) as world:
                anvil_figures["client"] = measure_client(world, **client_load)
            results["anvil"] = anvil_figures
        for period in args.periods:
            _progress(f"clique: {args.validators} validators + 1 RPC node, period {period} s")
            network = CliqueNetwork.create(root / f"clique-{period}", validators=args.validators, rpc_nodes=1,
                                           period=period, alloc=funded)
            with network:
                network.start()
                network.wait_for_peers(timeout=60)
                network.wait_for_block(network.head() + 2, timeout=60)
                with network.supervised():
                    figures = measure_chain(network.rpc_url(), max(5, args.txs // period))
                    _progress(f"clique period {period}: the client's writes, reads and a batch")
                    with World(network.rpc_url(), confirmations=1) as world:
                        figures["client"] = measure_client(world, **client_load)
                results[f"clique_period_{period}"] = {**figures, "validators": args.validators, "period_s": period}
    return results


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.network", description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=30, help="sequential transfers per chain (30; halved at period 2)")
    parser.add_argument("--validators", type=int, default=4, help="sealing validators (4)")
    parser.add_argument("--periods", type=int, nargs="+", default=[1, 2], help="Clique periods to run (1 2)")
    parser.add_argument("--writes", type=int, default=10, help="single writes by the lab per chain (10)")
    parser.add_argument("--reads", type=int, default=10, help="reads by the doctor per chain (10)")
    parser.add_argument("--batch", type=int, default=64, help="records in the one batched write (64)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="result file (bench/results/network.json)")
    return parser.parse_args(argv)


def _progress(message: str) -> None:
    print(f"[bench.network] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    began = time.perf_counter()
    load_start = os.getloadavg()
    try:
        results = run(args)
    except EHRError as exc:
        print(f"error: benchmark failed: {exc}", file=sys.stderr)
        return 1
    results["context"] = {"cpu_cores": os.cpu_count(), "load_average_at_start": load_start,
                          "load_average_at_end": os.getloadavg(), "seconds": round(time.perf_counter() - began, 1),
                          "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                          "engine": "geth v1.13.15 Clique, --gcmode archive, loopback",
                          "what": "one value transfer at a time, signed locally; latency = send until receipt"}
    write_json(args.out, results)
    table = Table("chain", "transfer p50/p95 ms", "blocks/s", "write p50/p95 ms", "read p50/p95 ms",
                  "batch s", "batched rec/s", "write vs anvil", "read vs anvil")
    anvil = results["anvil"]["client"]
    for name, figures in results.items():
        if name == "context":
            continue
        rate, client = figures["blocks_per_s"], figures["client"]
        table.add_row(name, f"{figures['p50_ms']}/{figures['p95_ms']}", "-" if rate is None else str(rate),
                      f"{client['write']['p50_ms']}/{client['write']['p95_ms']}",
                      f"{client['read']['p50_ms']}/{client['read']['p95_ms']}",
                      str(client["batch"]["seconds"]), str(client["batch"]["records_per_s"]),
                      f"{client['write']['p50_ms'] / anvil['write']['p50_ms']:.1f}x",
                      f"{client['read']['p50_ms'] / anvil['read']['p50_ms']:.1f}x")
    Console(width=200).print(table)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
