"""What `bench.scale` measures at each checkpoint, on the chain `ScaleChain` grew.

The focus patient's own records stay fixed while the chain grows, so a per-patient figure
(`record list`, `audit`, full history) that grows between checkpoints grows with the chain, not
with the patient. Syncing an audit index from scratch reads the whole chain by design; the
incremental sync and the monitor take in one probe visit (a few blocks) and should stay flat.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.scale_chain import FOCUS, HISTORY, WRITERS, ScaleChain
from ehr_client.audit import AuditIndex, Monitor, scan_alerts
from ehr_client.client import EHRClient


def _quiet(_: object) -> None:
    """Alerts are counted, not printed."""


def timed(action: Callable[[], object]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return (time.perf_counter() - start) * 1000, result


def percentiles(action: Callable[[], object], count: int) -> dict[str, float]:
    samples = [timed(action)[0] for _ in range(count)]
    cuts = statistics.quantiles(samples, n=100, method="inclusive") if count > 1 else [samples[0]] * 99
    return {"p50_ms": round(statistics.median(samples), 2), "p95_ms": round(cuts[94], 2), "samples": count}


def disk(path: Path) -> dict[str, int]:
    """Apparent bytes and allocated bytes (st_blocks) of every file under `path`."""
    apparent = allocated = files = 0
    for root, _, names in os.walk(path):
        for name in names:
            stat = os.stat(os.path.join(root, name))
            apparent += stat.st_size
            allocated += stat.st_blocks * 512
            files += 1
    return {"bytes": apparent, "allocated_bytes": allocated, "files": files}


class Checkpoint:
    """Measures one checkpoint. The incremental index and the monitor live across checkpoints."""

    def __init__(self, grown: ScaleChain, *, repeats: int, history_repeats: int) -> None:
        self.grown = grown
        self.world = grown.world
        self.repeats = repeats
        self.history_repeats = history_repeats
        self.focus: EHRClient = self.world.client(FOCUS, "scale")
        self.history: EHRClient = self.world.client(HISTORY, "scale")
        # The focus patient's own audit index: what `audit_trail` reads, kept up to date between checkpoints.
        self.index = AuditIndex.open(self.world.chain, self.focus.state_dir / "audit")
        self.monitor = Monitor(self.world.chain, state_dir=self.world.scratch("monitor"), emit=_quiet)

    def close(self) -> None:
        self.index.close()
        self.monitor.close()

    def measure(self, log: Callable[[str], None]) -> dict[str, Any]:
        g = self.grown
        out: dict[str, Any] = {"records": g.records, "blocks": int(self.world.chain.w3.eth.block_number),
                               "patients": len(g.patients), "visits": g.visits, "mixed_grants_and_reads": g.mixed,
                               "anchor_last_step_s": round(g.step_seconds, 2)}
        out["load_average"] = os.getloadavg()
        log("  audit index from scratch")
        scratch = self.world.scratch(f"audit-scratch-{g.records}")
        with AuditIndex.open(self.world.chain, scratch) as fresh:
            ms, report = timed(fresh.sync)
            out["audit_sync_scratch"] = {"seconds": round(ms / 1000, 2), "events": fresh.count()}
        out["disk_index"] = disk(scratch)
        shutil.rmtree(scratch)

        log("  incremental index and monitor: the step, then one probe visit")
        ms, report = timed(self.index.sync)
        out["audit_sync_step"] = {"seconds": round(ms / 1000, 2), "events": report.events}
        ms, _ = timed(self.monitor.catch_up)
        out["monitor_step_s"] = round(ms / 1000, 2)
        probe_blocks = g.probe()
        ms, report = timed(self.index.sync)
        out["audit_sync_incremental"] = {"ms": round(ms, 2), "blocks": probe_blocks, "events": report.events}
        ms, _ = timed(self.monitor.catch_up)
        out["monitor_lag_ms"] = round(ms, 2)
        out["monitor_lag_blocks"] = probe_blocks

        log("  whole-history alert scan (events and transactions)")
        scan_dir = self.world.scratch(f"scan-{g.records}")
        ms, alerts = timed(lambda: scan_alerts(self.world.chain, state_dir=scan_dir))
        out["monitor_scan_scratch"] = {"seconds": round(ms / 1000, 2), "alerts": len(alerts)}
        shutil.rmtree(scan_dir)

        log(f"  focus patient: record list x{self.repeats}, audit x{self.repeats}, history x{self.history_repeats}")
        patient = self.focus.address
        own = len(self.focus.list_records(patient))
        out["focus_records"] = own
        out["record_list"] = percentiles(lambda: self.focus.list_records(patient), self.repeats)
        out["audit_trail"] = percentiles(lambda: self.focus.audit_trail(patient), self.repeats)
        out["focus_audit_rows"] = len(self.focus.audit_trail(patient))
        reader = self.history
        out["history_records"] = len(reader.read_history(reader.address))
        out["read_history"] = percentiles(lambda: reader.read_history(reader.address), self.history_repeats)

        root = self.world.root
        out["disk_store"] = disk(root / "store")
        out["disk_journal"] = {"bytes": 0, "allocated_bytes": 0, "files": 0}
        for name in WRITERS:
            for key, value in disk(root / "state" / name).items():
                out["disk_journal"][key] += value
        out["disk_per_record"] = {
            part: round(out[f"disk_{part}"]["bytes"] / g.records, 1) for part in ("store", "journal", "index")}
        out["disk_allocated_per_record"] = {
            part: round(out[f"disk_{part}"]["allocated_bytes"] / g.records, 1) for part in ("store", "journal", "index")}
        out["records_after_probe"] = g.records
        return out
