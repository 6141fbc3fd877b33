"""`python -m bench.listing`: a patient's record list as the chain grows, scanned from the deployment
(the baseline, same run) against the per-patient cursor (`ehr_client.client.anchor_cache`).

On a fresh Anvil one patient writes `--records` (20) records of ~1 KB to itself; the chain is then
grown with empty blocks (`anvil_mine`) to each checkpoint (`--blocks`, default ~16,000 and ~64,000
blocks after the first one, where the chain holds just the set-up). At each checkpoint, `--runs`
rounds, interleaved, of:

- `uncached`: `RecordLocator` without a cache, every listing asks the node from the deployment block;
- `cached_warm`: `EHRClient.list_records_report` with its state directory, the cursor file present
  (as a later `ehr record list` finds it);
- `cached_cold`: the same with the cursor file deleted before each listing (a scan plus the write).

Plus, once per checkpoint, `catch_up`: the first cached listing after the chain grew, from the
previous checkpoint's cursor, and the JSON-RPC round trips of a warm cached and an uncached listing
(a loopback proxy, `bench.rpc`). p50/p95 in ms, the ratios uncached/warm and uncached/cold, and the
log-log slope of each p50 against the blocks, first to last checkpoint. Writes
`bench/results/listing.json`. Mining is the slow part: 16,000 blocks took 259 s and the next 48,000
blocks 1,676 s in one run here (Anvil slows as the chain grows).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests
from rich.console import Console
from rich.table import Table

from bench._records import observation
from bench._world import World
from bench.report import run_and_report
from bench.rpc import RpcCounter
from ehr_client.chain.client import ChainClient
from ehr_client.client import EHRClient
from ehr_client.client.locate import RecordLocator

RESULTS = Path(__file__).resolve().parent / "results" / "listing.json"
MODES = ("uncached", "cached_warm", "cached_cold")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.listing", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20, help="the patient's own records (20)")
    parser.add_argument("--blocks", type=int, nargs="*", default=[16_000, 64_000],
                        help="chain lengths to grow to after the first checkpoint (16000 64000)")
    parser.add_argument("--runs", type=int, default=20, help="listings per mode and checkpoint (20)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="result file (bench/results/listing.json)")
    return parser.parse_args(argv)


def _mine_to(rpc_url: str, chain: ChainClient, target: int) -> float:
    """Empty blocks until the head is `target`; returns the seconds it took."""
    began = time.perf_counter()
    while (head := chain.head()) < target:
        count = min(4_000, target - head)
        answer = requests.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "anvil_mine",
                                              "params": [hex(count), "0x0"]}, timeout=600).json()
        if "error" in answer:
            raise RuntimeError(f"anvil_mine failed: {answer['error']}")
    return time.perf_counter() - began


def _ms(op: Callable[[], object]) -> float:
    began = time.perf_counter()
    op()
    return (time.perf_counter() - began) * 1000


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50_ms": round(statistics.median(ordered), 2),
            "p95_ms": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 2)}


def _trips(counter: RpcCounter, op: Callable[[], object]) -> int:
    with counter.counting() as trips:
        op()
    return len(trips)


def _checkpoint(world: World, cached: EHRClient, patient: str, runs: int, counter: RpcCounter) -> dict[str, Any]:
    chain = world.chain
    uncached = RecordLocator(chain, cached.store)
    anchors = cached.locator.anchors
    assert anchors is not None
    path = anchors.path(patient)
    assert path is not None
    catch_up = _ms(lambda: cached.list_records_report(patient))  # from the last checkpoint's cursor
    truth = uncached.listing(patient)
    if cached.list_records_report(patient) != truth:
        raise RuntimeError("the cached listing differs from the scan from the deployment")

    def cold() -> None:
        path.unlink(missing_ok=True)
        cached.list_records_report(patient)

    ops: dict[str, Callable[[], object]] = {"uncached": lambda: uncached.listing(patient),
                                            "cached_warm": lambda: cached.list_records_report(patient),
                                            "cached_cold": cold}
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(runs):
        for mode in MODES:
            times[mode].append(_ms(ops[mode]))
    counted = EHRClient(ChainClient(counter.url, chain.deployment), cached.store, cached.identity,
                        state_dir=cached.state_dir)
    plain = RecordLocator(counted.chain, cached.store)
    counted.list_records_report(patient)
    plain.listing(patient)
    out: dict[str, Any] = {"blocks": chain.head(), "records": len(truth.records),
                           "catch_up_ms": round(catch_up, 2),
                           "round_trips": {"cached_warm": _trips(counter, lambda: counted.list_records_report(patient)),
                                           "uncached": _trips(counter, lambda: plain.listing(patient))},
                           "cache_file_bytes": path.stat().st_size if path.exists() else 0}
    for mode in MODES:
        out[mode] = _stats(times[mode])
    out["ratio_uncached_over_warm"] = round(out["uncached"]["p50_ms"] / out["cached_warm"]["p50_ms"], 2)
    out["ratio_uncached_over_cold"] = round(out["uncached"]["p50_ms"] / out["cached_cold"]["p50_ms"], 2)
    return out


def _slopes(checkpoints: list[dict[str, Any]]) -> dict[str, float | None]:
    first, last = checkpoints[0], checkpoints[-1]
    out: dict[str, float | None] = {}
    for mode in MODES:
        a, b = first[mode]["p50_ms"], last[mode]["p50_ms"]
        out[mode] = None if first["blocks"] == last["blocks"] else round(
            math.log(b / a) / math.log(last["blocks"] / first["blocks"]), 3)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    began = time.perf_counter()
    checkpoints: list[dict[str, Any]] = []
    mining: list[float] = []
    with World() as world:
        patient = world.client("patient")
        patient.register_patient()
        patient.publish_key()
        for n in range(args.records):
            patient.add_record(patient.address, observation(10_000 + n))
        cached = EHRClient(world.chain, patient.store, patient.identity, state_dir=world.scratch("listing"))
        counter = RpcCounter(world.rpc_url)
        try:
            for target in [0, *args.blocks]:
                if target:
                    _progress(f"mining to block {target:,}")
                    mining.append(round(_mine_to(world.rpc_url, world.chain, target), 1))
                _progress(f"measuring at block {world.chain.head():,}")
                checkpoints.append(_checkpoint(world, cached, patient.address, args.runs, counter))
        finally:
            counter.close()
        node = world.chain.w3.client_version
    return {"checkpoints": checkpoints, "slopes_p50_by_blocks": _slopes(checkpoints),
            "context": {"cpu_cores": os.cpu_count(), "node": node, "runs": args.runs,
                        "depth": cached.locator.anchors.depth if cached.locator.anchors else None,
                        "mining_seconds": mining, "seconds": round(time.perf_counter() - began, 1),
                        "load_average_at_end": os.getloadavg(),
                        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}}


def _progress(message: str) -> None:
    print(f"[bench.listing] {message}", file=sys.stderr, flush=True)


def print_table(results: dict[str, Any]) -> None:
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
    table = Table(title="record list for one patient as the chain grows", title_justify="left")
    for column in ("blocks", "uncached p50/p95", "cached warm p50/p95", "cached cold p50/p95", "uncached/warm",
                   "uncached/cold", "catch-up", "round trips warm/uncached"):
        table.add_column(column, justify="right")
    for c in results["checkpoints"]:
        table.add_row(f"{c['blocks']:,}", *(f"{c[m]['p50_ms']:.1f} / {c[m]['p95_ms']:.1f} ms" for m in MODES),
                      f"{c['ratio_uncached_over_warm']:.2f}x", f"{c['ratio_uncached_over_cold']:.2f}x",
                      f"{c['catch_up_ms']:.1f} ms",
                      f"{c['round_trips']['cached_warm']} / {c['round_trips']['uncached']}")
    console.print(table)
    slopes = results["slopes_p50_by_blocks"]
    console.print("log-log slope of p50 against blocks, first to last: "
                  + ", ".join(f"{m} {slopes[m]}" for m in MODES))


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    return run_and_report("bench.listing", args.out, lambda: run(args), print_table)


if __name__ == "__main__":
    sys.exit(main())
