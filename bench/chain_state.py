"""`python -m bench.chain_state`: does a mined transaction cost more as the chain's state grows?

bench-scale saw the full history read of one patient (20 records, an access request each) grow
from 90 to 525 ms between 1,000 and 100,000 records, while listing and audit stayed flat. This
isolates the node: on a fresh Anvil, the same transactions are timed as the state grows by
storage slots written straight into an unrelated account (`anvil_setStorageAt`, no transaction,
no event, nothing our contracts read), so only the size of the state changes between checkpoints.
Timed at each checkpoint, interleaved: `transfer` (a plain 21,000-gas transfer from an unlocked
development account, the cheapest mined transaction), `request_access` (a patient's access request
to its own record, what every read sends, through `ChainClient.transact`) and `view` (a registry
view call, nothing mined) as the control. p50/p95, the ratio to the same run's empty-state p50, and the log-log slope against
the slots. Writes `bench/results/chain_state.json`.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests
from eth_utils import to_checksum_address
from rich.console import Console
from rich.table import Table

from bench._records import observation
from bench._world import World
from bench.listing import _ms, _stats
from bench.report import run_and_report

RESULTS = Path(__file__).resolve().parent / "results" / "chain_state.json"
OPS = ("view", "transfer", "request_access")
_FILLER = "0x" + "5a" * 20  # holds the grown slots; no contract, no one reads it
_BATCH = 2_000


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chain_state", description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, nargs="*", default=[10_000, 50_000, 100_000],
                        help="state sizes (storage slots added) after the empty checkpoint (10000 50000 100000)")
    parser.add_argument("--runs", type=int, default=20, help="timed rounds per checkpoint (20)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="result file (bench/results/chain_state.json)")
    return parser.parse_args(argv)


def _grow(rpc_url: str, first: int, count: int) -> None:
    """`count` more non-zero storage slots in the filler account, in batched requests."""
    for start in range(first, first + count, _BATCH):
        body = [{"jsonrpc": "2.0", "id": slot, "method": "anvil_setStorageAt",
                 "params": [_FILLER, hex(slot), "0x" + (slot + 1).to_bytes(32, "big").hex()]}
                for slot in range(start, min(start + _BATCH, first + count))]
        answers = requests.post(rpc_url, json=body, timeout=300).json()
        failed = [a for a in answers if "error" in a]
        if failed:
            raise RuntimeError(f"anvil_setStorageAt failed: {failed[0]['error']}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    began = time.perf_counter()
    checkpoints: list[dict[str, Any]] = []
    with World() as world:
        patient = world.client("patient")
        patient.register_patient()
        patient.publish_key()
        record_id = patient.add_record(patient.address, observation(30_000)).record_id
        chain, account = patient.chain, patient.identity.account
        ops: dict[str, Callable[[], object]] = {
            "view": lambda: chain.call(chain.records.functions.recordStatus(record_id), action="look up record"),
            "transfer": lambda: chain.w3.eth.wait_for_transaction_receipt(chain.w3.eth.send_transaction(
                {"from": world.ids["gov_b"].address, "to": to_checksum_address(_FILLER), "value": 1}),
                poll_latency=0.001),
            "request_access": lambda: chain.transact(account, chain.consent.functions.requestAccess(record_id),
                                                     action="request access"),
        }
        grown = 0
        for slots in [0, *args.slots]:
            if slots > grown:
                _progress(f"growing the state to {slots:,} slots")
                _grow(world.rpc_url, grown, slots - grown)
                grown = slots
            _progress(f"measuring at {grown:,} slots")
            times: dict[str, list[float]] = {op: [] for op in OPS}
            for _ in range(args.runs):
                for op in OPS:
                    times[op].append(_ms(ops[op]))
            checkpoints.append({"slots": grown, **{op: _stats(times[op]) for op in OPS}})
        node = chain.w3.client_version
    base = checkpoints[0]
    for checkpoint in checkpoints:
        checkpoint["ratio_to_empty"] = {op: round(checkpoint[op]["p50_ms"] / base[op]["p50_ms"], 2) for op in OPS}
    return {"checkpoints": checkpoints, "slopes_p50_by_slots": _slopes(checkpoints[1:]),
            "context": {"cpu_cores": os.cpu_count(), "node": node, "runs": args.runs,
                        "seconds": round(time.perf_counter() - began, 1), "load_average_at_end": os.getloadavg(),
                        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}}


def _slopes(grown: list[dict[str, Any]]) -> dict[str, float | None]:
    if len(grown) < 2:
        return {op: None for op in OPS}
    first, last = grown[0], grown[-1]
    return {op: round(math.log(last[op]["p50_ms"] / first[op]["p50_ms"]) / math.log(last["slots"] / first["slots"]), 3)
            for op in OPS}


def _progress(message: str) -> None:
    print(f"[bench.chain_state] {message}", file=sys.stderr, flush=True)


def print_table(results: dict[str, Any]) -> None:
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
    table = Table(title="one operation as the node's state grows (same run, fresh Anvil)", title_justify="left")
    table.add_column("storage slots", justify="right")
    for op in OPS:
        table.add_column(f"{op} p50/p95 ms", justify="right")
        table.add_column(f"{op} / empty", justify="right")
    for c in results["checkpoints"]:
        cells = [f"{c['slots']:,}"]
        for op in OPS:
            cells += [f"{c[op]['p50_ms']} / {c[op]['p95_ms']}", f"{c['ratio_to_empty'][op]}x"]
        table.add_row(*cells)
    console.print(table)
    slopes = results["slopes_p50_by_slots"]
    console.print("log-log slope of p50 against the slots (from the first grown checkpoint): "
                  + ", ".join(f"{op} {slopes[op]}" for op in OPS))


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    return run_and_report("bench.chain_state", args.out, lambda: run(args), print_table)


if __name__ == "__main__":
    sys.exit(main())
