"""`python -m bench.scale`: how cost grows with the size of the chain (`make bench-scale`, minutes).

On a fresh Anvil: 1,000 patients, records anchored in batches by three writers with grants and
reads mixed in, up to `--max-records`. At each checkpoint (1k, 10k, 100k records by default): the
time to anchor the last step, an audit index synced from scratch and incrementally, the monitor's
lag and a whole-history alert scan, `record list`, `audit` and a full history read for one patient
whose own records stay fixed, and disk per record. Prints a table with the log-log slopes between
checkpoints, writes bench/results/scale.json and scale.png next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import version
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._records import record_size
from bench._world import World
from bench.report import write_json
from bench.scale_chain import FOCUS, HISTORY, WRITERS, ScaleChain, seeded_identity
from bench.scale_measure import Checkpoint
from bench.scale_report import plot, print_table, slopes
from ehr_client.batch.writer import MAX_BATCH_SIZE
from ehr_client.errors import EHRError

RESULTS = Path(__file__).resolve().parent / "results" / "scale.json"


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--max-records", type=int, default=100_000, help="stop after this many records (100000)")
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[1_000, 10_000, 100_000],
                        help="record totals to measure at (1000 10000 100000); those above --max-records are dropped")
    parser.add_argument("--patients", type=int, default=1_000, help="patients on the chain (1000)")
    parser.add_argument("--panel", type=int, default=10, help=f"records per visit, one batch each (10; at most {MAX_BATCH_SIZE})")
    parser.add_argument("--focus-records", type=int, default=20, help="own records of each of the two measured patients (20)")
    parser.add_argument("--repeats", type=int, default=20, help="timed record lists and audits per checkpoint (20)")
    parser.add_argument("--history-repeats", type=int, default=3, help="timed full history reads per checkpoint (3)")
    parser.add_argument("--threads", type=int, default=8, help="threads onboarding patients (8)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="result file (bench/results/scale.json)")
    parser.add_argument("--replot", action="store_true",
                        help="measure nothing: recompute slopes, table and PNG from the result file")
    args = parser.parse_args(argv)
    if not 1 <= args.panel <= MAX_BATCH_SIZE:
        parser.error(f"--panel must be 1 to {MAX_BATCH_SIZE}")
    args.checkpoints = sorted(c for c in set(args.checkpoints) if 2 * args.focus_records < c <= args.max_records)
    if not args.checkpoints:
        parser.error("no checkpoint is above twice --focus-records and at most --max-records")
    return args


def _progress(message: str) -> None:
    print(f"[bench.scale {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _context(world: World, args: argparse.Namespace) -> dict[str, Any]:
    return {
        "cpu_cores": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
        "packages": {name: version(name) for name in ("web3", "cryptography", "fhir.resources")},
        "node": world.chain.w3.client_version,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load_average_at_start": os.getloadavg(), "record_bytes": record_size(), "patients": args.patients,
        "panel": args.panel, "writers": list(WRITERS), "focus_records": args.focus_records,
        "focus": FOCUS, "history_patient": HISTORY,
        "repeats": args.repeats, "history_repeats": args.history_repeats,
    }


def run(args: argparse.Namespace, save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Grow and measure; `save` gets the results so far after every checkpoint (a long run cut short keeps them)."""
    began = time.perf_counter()
    checkpoints: list[dict[str, Any]] = []
    with World() as world:
        context = _context(world, args)
        _progress(f"deriving and onboarding {args.patients} patients")
        grown = ScaleChain(world, [seeded_identity(i) for i in range(args.patients)], args.panel, args.threads)
        context["onboarding_seconds"] = round(grown.onboard(_progress), 1)
        grown.write_focus(args.focus_records)
        checkpoint = Checkpoint(grown, repeats=args.repeats, history_repeats=args.history_repeats)
        try:
            for target in args.checkpoints:
                step = target - grown.records
                _progress(f"anchoring {step:,} records -> {target:,}")
                grown.grow(step)
                _progress(f"{grown.records:,} records in {grown.step_seconds:.1f}s; measuring")
                figures = checkpoint.measure(_progress)
                figures["step_records"] = step
                figures["anchor_ms_per_record"] = round(grown.step_seconds * 1000 / step, 3)
                checkpoints.append(figures)
                save({"checkpoints": checkpoints, "slopes": slopes(checkpoints), "context": context})
                _progress(f"checkpoint {figures['records']:,} done at {time.perf_counter() - began:.0f}s")
        finally:
            checkpoint.close()
    context["load_average_at_end"] = os.getloadavg()
    context["seconds"] = round(time.perf_counter() - began, 1)
    return {"checkpoints": checkpoints, "slopes": slopes(checkpoints), "context": context}


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    picture = args.out.with_suffix(".png")
    if args.replot:
        results = json.loads(args.out.read_text())
        results["slopes"] = slopes(results["checkpoints"])
        write_json(args.out, results)
        plot(results, picture)
        print_table(results)
        return 0

    def save(results: dict[str, Any]) -> None:
        write_json(args.out, results)
        plot(results, picture)

    try:
        results = run(args, save)
    except EHRError as exc:
        print(f"error: scale benchmark failed: {exc}", file=sys.stderr)
        return 1
    save(results)
    print_table(results)
    print(f"wrote {args.out} and {picture}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
