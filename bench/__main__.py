"""`python -m bench`: start a fresh Anvil, deploy, measure, print a table, write bench/results/latest.json.

Sections: gas per operation (real receipts), JSON-RPC round trips per write, read and grant, write
throughput single vs batched, envelope vs raw AES-GCM, peak RSS of a 1 GiB write in its own
process, full-read latency. Each figure is checked
against its target (PASS/MISS); a miss is reported, never hidden, and the run still exits 0 so the
numbers are kept. Exit 1 only if the benchmark itself fails.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench import crypto, gas, memory, read, rpc, throughput
from bench._records import record_size
from bench._world import World
from bench.report import print_report, targets, write_json
from ehr_client.errors import EHRError

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
SECTIONS = ("gas", "rpc", "throughput", "crypto", "memory", "read")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000, help="records written single and batched (1000)")
    parser.add_argument("--batch-size", type=int, default=256, help="records per anchor in the batched run (256)")
    parser.add_argument("--reads", type=int, default=200, help="timed full reads of a single record (200)")
    parser.add_argument("--batched-reads", type=int, default=50, help="timed reads of a batched record (50)")
    parser.add_argument("--crypto-mib", type=int, default=64, help="buffer encrypted in the crypto section (64)")
    parser.add_argument("--crypto-rounds", type=int, default=5, help="best of this many crypto runs (5)")
    parser.add_argument("--memory-mib", type=int, default=1024, help="file size for the memory section (1024)")
    parser.add_argument("--phase-reads", type=int, default=50,
                        help="phase-timed reads, interleaved with the floors (50)")
    parser.add_argument("--first-reads", type=int, default=20,
                        help="records each read once by a reader that never located them (20)")
    parser.add_argument("--only", type=_sections, default=SECTIONS, metavar="SECTION[,SECTION]",
                        help=f"run only these sections ({', '.join(SECTIONS)}); `--only read,rpc` is the quick look at "
                        "the read path. Writes results/only-<sections>.json unless --out is given")
    parser.add_argument("--out", type=Path, default=None, help=f"result file ({RESULTS.relative_to(Path.cwd())})"
                        if RESULTS.is_relative_to(Path.cwd()) else "result file")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = RESULTS if args.only == SECTIONS else RESULTS.with_name(f"only-{'-'.join(args.only)}.json")
    return args


def _sections(value: str) -> tuple[str, ...]:
    names = {name.strip() for name in value.split(",") if name.strip()}
    unknown = names - set(SECTIONS)
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown section {', '.join(sorted(unknown)) or '(none)'}; "
                                         f"choose from {', '.join(SECTIONS)}")
    return tuple(name for name in SECTIONS if name in names)


def _context(world: World) -> dict[str, Any]:
    packages = ("web3", "eth-account", "cryptography", "fhir.resources", "eth-ape")
    return {
        "cpu_cores": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "packages": {name: version(name) for name in packages},
        "node": world.chain.w3.client_version,
        "compiler": world.chain.deployment.compiler,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load_average_at_start": os.getloadavg(),
        "record_bytes": record_size(),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    began = time.perf_counter()
    results: dict[str, Any] = {}
    with World() as world:
        context = _context(world)
        log, only = _progress, args.only
        if "gas" in only:
            log("gas")
            g = gas.measure(world)
            results["gas"] = {**g.figures, "anchor_per_record": g.anchor_per_record,
                              "anchor_batch_total": g.anchor_total}
            context["paths"] = g.paths
        if "rpc" in only:
            log("rpc: round trips per write, read and grant")
            results["rpc"] = rpc.measure(world).to_json()
        if "throughput" in only:
            log(f"throughput: {args.records} records single, then batched")
            results["throughput"] = _throughput(throughput.measure(world, records=args.records,
                                                                   batch_size=args.batch_size))
            context["throughput_path"] = (throughput.__doc__.split("\n\n")[1].replace("\n", " ")
                                          if throughput.__doc__ else "")
        if "crypto" in only:
            log("crypto")
            c = crypto.measure(size=args.crypto_mib << 20, rounds=args.crypto_rounds)
            results["crypto"] = {
                "aes_gcm_raw_MBps": round(c.raw_MBps, 1), "envelope_MBps": round(c.envelope_MBps, 1),
                "ratio": round(c.envelope_MBps / c.raw_MBps, 3),
                "envelope_plus_sha256_MBps": round(c.envelope_sha256_MBps, 1),
                "sha256_alone_MBps": round(c.sha256_MBps, 1),
                "as_stored_over_sha256": round(c.envelope_sha256_MBps / c.sha256_MBps, 3),
                "buffer_MiB": c.size >> 20, "rounds": c.rounds, "unit": "MB/s (10^6 bytes)",
            }
        if "memory" in only:
            log(f"memory: a {args.memory_mib} MiB file in a child process")
            m = memory.measure(world, size=args.memory_mib << 20)
            results["memory"] = {
                "encrypt_1GiB_peak_rss_MiB": round(m.peak_rss_MiB, 1),
                "rss_before_write_MiB": round(m.rss_before_write_MiB, 1),
                "peak_before_write_MiB": round(m.peak_before_write_MiB, 1),
                "ru_maxrss_MiB_from_wait4": round(m.ru_maxrss_MiB, 1),
                "file_GiB": m.size / (1 << 30), "seconds": round(m.seconds, 1),
            }
            context["memory_path"] = ("child process: EHRClient.add_record(patient, path, category='genomic'); peak = "
                                      "the child's VmHWM read by the parent from /proc/<pid>/status after the write")
        if "read" in only:
            log(f"read: {args.reads} + {args.batched_reads} reads, then {args.phase_reads} phase-timed with floors")
            results["read"] = read.measure(world, reads=args.reads, batched_reads=args.batched_reads,
                                           phase_reads=args.phase_reads, first_reads=args.first_reads).to_json()
    context["load_average_at_end"] = os.getloadavg()
    context["seconds"] = round(time.perf_counter() - began, 1)
    context["sections"] = list(args.only)
    return {**results, "context": context}


def _throughput(tp: throughput.ThroughputResult) -> dict[str, Any]:
    return {
        "records_per_s_single": round(tp.single_per_s, 2), "records_per_s_batched": round(tp.batched_per_s, 2),
        "ratio": round(tp.batched_per_s / tp.single_per_s, 2), "records": tp.records, "batch_size": tp.batch_size,
        "batches": tp.batches, "single_seconds": round(tp.single_seconds, 2),
        "batched_seconds": round(tp.batched_seconds, 2),
        "records_per_s_batched_fsync_each_blob": round(tp.batched_fsync_each_per_s, 2),
        "group_commit_ratio": round(tp.batched_per_s / tp.batched_fsync_each_per_s, 2),
        "ms_per_record_single": round(1000 / tp.single_per_s, 2),
        "ms_per_record_batched": round(1000 / tp.batched_per_s, 2),
        "batched_cpu_ms_per_record": {"user": round(tp.batched_cpu_ms[0], 3), "system": round(tp.batched_cpu_ms[1], 3)},
        "local_steps_ms_per_record": tp.local_ms,
        "tx_floor_ms": round(tp.tx_floor_ms, 2),
        "single_write_over_tx_floor": round(1000 / tp.single_per_s / tp.tx_floor_ms, 2),
    }


def _progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    try:
        results = run(args)
    except EHRError as exc:
        print(f"error: benchmark failed: {exc}", file=sys.stderr)
        return 1
    checks = targets(results)
    results["targets"] = [t.to_json() for t in checks]
    write_json(args.out, results)
    print_report(results, checks)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
