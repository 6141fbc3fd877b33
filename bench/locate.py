"""`python -m bench.locate`: the first read of a record by id as the chain grows: the record located
from where the registry says its event is (`RecordRegistry.anchoredNear`, 256 blocks) against the
baseline of the same run, its `RecordAdded` event looked up from the deployment block (what every
first read did before).

On a fresh Anvil one patient writes `--records` (20) records to itself; the chain is grown with empty
blocks to each checkpoint (`--blocks`). At each checkpoint, `--runs` interleaved rounds over the
records, each with a fresh `RecordLocator` (nothing remembered): `scan` (the event from the
deployment block, and the status) and `near` (`RecordLocator.find`). p50/p95 in ms, their ratio,
the round trips and the widest log range each asks, and the log-log slope of each p50 against the
blocks. Writes `bench/results/locate.json`.
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

from rich.console import Console
from rich.table import Table

from bench._records import observation
from bench._world import World
from bench.listing import _mine_to, _ms, _stats
from bench.report import run_and_report
from bench.rpc import RpcCounter
from ehr_client.chain.calls import Call, call_many
from ehr_client.chain.client import ChainClient
from ehr_client.client.locate import RecordLocator
from ehr_client.storage import BlobStore

RESULTS = Path(__file__).resolve().parent / "results" / "locate.json"
MODES = ("scan", "near")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.locate", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20, help="records written before the chain grows (20)")
    parser.add_argument("--blocks", type=int, nargs="*", default=[4_000, 16_000],
                        help="chain lengths to grow to after the first checkpoint (4000 16000)")
    parser.add_argument("--runs", type=int, default=3, help="rounds over all records per checkpoint (3)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="result file (bench/results/locate.json)")
    return parser.parse_args(argv)


def _scan(chain: ChainClient, record_id: bytes) -> None:
    """The baseline: the record's event from the deployment block, then its status."""
    events = chain.get_events("RecordRegistry", "RecordAdded", filters={"recordId": record_id})
    assert len(events) == 1
    call_many(chain, [Call(chain.records, "recordStatus", (record_id,))], action="look up record status")


def _ops(chain: ChainClient, store: BlobStore) -> dict[str, Callable[[bytes], object]]:
    return {"scan": lambda r: _scan(chain, r), "near": lambda r: RecordLocator(chain, store).find(r)}


def _asked(counter: RpcCounter, head: int, op: Callable[[], object]) -> tuple[int, int]:
    """Round trips of `op`, and the widest block range of its log queries ("latest": `head`)."""
    with counter.counting() as trips:
        start = len(counter.calls)
        op()
    ranges = [(c["params"][0]["fromBlock"], c["params"][0]["toBlock"])
              for trip in counter.calls[start:] for c in trip if c.get("method") == "eth_getLogs"]
    widest = max((_block(end, head) - _block(begin, head) + 1 for begin, end in ranges), default=0)
    return len(trips), widest


def _block(tag: str, head: int) -> int:
    return int(tag, 16) if tag.startswith("0x") else head


def _checkpoint(world: World, store: BlobStore, ids: list[bytes], runs: int, counter: RpcCounter) -> dict[str, Any]:
    ops = _ops(world.chain, store)
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(runs):
        for record_id in ids:
            for mode in MODES:
                times[mode].append(_ms(lambda: ops[mode](record_id)))
    counted = ChainClient(counter.url, world.chain.deployment)
    counted.head()  # the client has seen the head, as any client that did anything has
    counted_ops = _ops(counted, store)
    head = world.chain.head()
    out: dict[str, Any] = {"blocks": head, "records": len(ids)}
    for mode in MODES:
        trips, widest = _asked(counter, head, lambda: counted_ops[mode](ids[0]))
        out[mode] = {**_stats(times[mode]), "round_trips": trips, "widest_log_range": widest}
    out["ratio_scan_over_near"] = round(out["scan"]["p50_ms"] / out["near"]["p50_ms"], 2)
    return out


def _slopes(checkpoints: list[dict[str, Any]]) -> dict[str, float | None]:
    first, last = checkpoints[0], checkpoints[-1]
    return {mode: None if first["blocks"] == last["blocks"] else round(
        math.log(last[mode]["p50_ms"] / first[mode]["p50_ms"]) / math.log(last["blocks"] / first["blocks"]), 3)
        for mode in MODES}


def run(args: argparse.Namespace) -> dict[str, Any]:
    began = time.perf_counter()
    checkpoints: list[dict[str, Any]] = []
    mining: list[float] = []
    with World() as world:
        patient = world.client("patient")
        patient.register_patient()
        patient.publish_key()
        ids = [patient.add_record(patient.address, observation(20_000 + n)).record_id for n in range(args.records)]
        counter = RpcCounter(world.rpc_url)
        try:
            for target in [0, *args.blocks]:
                if target:
                    _progress(f"mining to block {target:,}")
                    mining.append(round(_mine_to(world.rpc_url, world.chain, target), 1))
                _progress(f"measuring at block {world.chain.head():,}")
                checkpoints.append(_checkpoint(world, patient.store, ids, args.runs, counter))
        finally:
            counter.close()
        node = world.chain.w3.client_version
    return {"checkpoints": checkpoints, "slopes_p50_by_blocks": _slopes(checkpoints),
            "context": {"cpu_cores": os.cpu_count(), "node": node, "runs": args.runs, "mining_seconds": mining,
                        "seconds": round(time.perf_counter() - began, 1), "load_average_at_end": os.getloadavg(),
                        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}}


def _progress(message: str) -> None:
    print(f"[bench.locate] {message}", file=sys.stderr, flush=True)


def print_table(results: dict[str, Any]) -> None:
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
    table = Table(title="first read by id: locating one record as the chain grows", title_justify="left")
    for column in ("blocks", "scan p50/p95", "near p50/p95", "scan/near", "round trips scan/near",
                   "widest log range scan/near"):
        table.add_column(column, justify="right")
    for c in results["checkpoints"]:
        scan, near = c["scan"], c["near"]
        table.add_row(f"{c['blocks']:,}", f"{scan['p50_ms']:.1f} / {scan['p95_ms']:.1f} ms",
                      f"{near['p50_ms']:.1f} / {near['p95_ms']:.1f} ms", f"{c['ratio_scan_over_near']:.2f}x",
                      f"{scan['round_trips']} / {near['round_trips']}",
                      f"{scan['widest_log_range']:,} / {near['widest_log_range']:,}")
    console.print(table)
    slopes = results["slopes_p50_by_blocks"]
    console.print("log-log slope of p50 against blocks, first to last: "
                  + ", ".join(f"{m} {slopes[m]}" for m in MODES))


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    return run_and_report("bench.locate", args.out, lambda: run(args), print_table)


if __name__ == "__main__":
    sys.exit(main())
