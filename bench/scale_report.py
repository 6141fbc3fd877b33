"""The curves of `bench.scale`: log-log slopes between checkpoints, the table, the PNG."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

# name -> (how to read it from a checkpoint, unit, what it should scale with)
SERIES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "anchor ms/record (last step)": (("anchor_ms_per_record",), "ms", "own"),
    "audit sync from scratch": (("audit_sync_scratch", "seconds"), "s", "chain"),
    "audit sync, one probe visit": (("audit_sync_incremental", "ms"), "ms", "own"),
    "monitor lag, one probe visit": (("monitor_lag_ms",), "ms", "own"),
    "alert scan from scratch": (("monitor_scan_scratch", "seconds"), "s", "chain"),
    "record list p50 (focus patient)": (("record_list", "p50_ms"), "ms", "own"),
    "record list p95": (("record_list", "p95_ms"), "ms", "own"),
    "audit p50 (focus patient)": (("audit_trail", "p50_ms"), "ms", "own"),
    "audit p95": (("audit_trail", "p95_ms"), "ms", "own"),
    "full history p50 (2nd patient)": (("read_history", "p50_ms"), "ms", "own"),
    "disk/record: store": (("disk_per_record", "store"), "B", "own"),
    "disk/record: journal": (("disk_per_record", "journal"), "B", "own"),
    "disk/record: index": (("disk_per_record", "index"), "B", "own"),
}
# A log-log slope from the first to the last checkpoint above this, for a figure that should not depend on
# the chain, is growth with the chain. Judged end to end: one step between two loaded checkpoints is noisy.
GROWS = 0.15


def value(checkpoint: dict[str, Any], path: tuple[str, ...]) -> float:
    found: Any = checkpoint
    for key in path:
        found = found[key]
    return float(found)


def _slope(a: dict[str, Any], b: dict[str, Any], path: tuple[str, ...], against: str) -> float | None:
    va, vb = value(a, path), value(b, path)
    if va <= 0 or vb <= 0 or a[against] == b[against]:
        return None
    return round(math.log(vb / va) / math.log(b[against] / a[against]), 2)


def slopes(checkpoints: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """For every series, d log(figure) / d log(size) between consecutive checkpoints, against the
    records and against the blocks (the chain's length: what eth_getLogs and a scan walk), and a
    verdict from the slope first to last checkpoint (against blocks, or records for a per-record figure)."""
    out: dict[str, dict[str, Any]] = {}
    for name, (path, unit, expected) in SERIES.items():
        pairs = list(zip(checkpoints, checkpoints[1:]))
        by_records = [_slope(a, b, path, "records") for a, b in pairs]
        by_blocks = [_slope(a, b, path, "blocks") for a, b in pairs]
        # Per-record figures are judged against the records, the rest against the chain's length.
        against = "records" if unit == "B" or "/record" in name else "blocks"
        overall = _slope(checkpoints[0], checkpoints[-1], path, against) if len(checkpoints) > 1 else None
        if overall is None:
            verdict = "n/a"
        elif expected == "chain":
            verdict = "O(chain) by design"
        elif overall > GROWS:
            verdict = "GROWS WITH CHAIN"
        else:
            verdict = "flat"
        out[name] = {"slopes": by_records, "slopes_by_blocks": by_blocks, f"overall_by_{against}": overall,
                     "verdict": verdict}
    return out


def print_table(results: dict[str, Any]) -> None:
    checkpoints = results["checkpoints"]
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
    table = Table(title="EHR scale benchmark", title_justify="left")
    table.add_column("figure")
    for c in checkpoints:
        table.add_column(f"{c['records']:,} rec", justify="right")
    table.add_column("slope/records", justify="right")
    table.add_column("slope/blocks", justify="right")
    table.add_column("first->last", justify="right")
    table.add_column("verdict")
    for name, (path, unit, _) in SERIES.items():
        fit = results["slopes"][name]
        table.add_row(f"{name} ({unit})", *(f"{value(c, path):,.2f}" for c in checkpoints),
                      *(", ".join("-" if s is None else f"{s:.2f}" for s in fit[key])
                        for key in ("slopes", "slopes_by_blocks")),
                      next((f"{v:.2f}" for k, v in fit.items() if k.startswith("overall") and v is not None), "-"),
                      fit["verdict"])
    table.add_row("blocks", *(f"{c['blocks']:,}" for c in checkpoints), "", "", "", "")
    table.add_row("indexed events", *(f"{c['audit_sync_scratch']['events']:,}" for c in checkpoints), "", "", "", "")
    table.add_row("focus records / audit rows", *(f"{c['focus_records']} / {c['focus_audit_rows']}"
                                                  for c in checkpoints), "", "", "", "")
    table.add_row("load average (1 min)", *(f"{c['load_average'][0]:.1f}" for c in checkpoints), "", "", "", "")
    console.print(table)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    checkpoints = results["checkpoints"]
    x = [c["records"] for c in checkpoints]
    figure, (times, sizes) = plt.subplots(1, 2, figsize=(13, 6.5), gridspec_kw={"width_ratios": [2, 1]})
    for name, (path_, unit, expected) in SERIES.items():
        ys = [value(c, path_) * (1000 if unit == "s" else 1) for c in checkpoints]
        if unit == "B":
            sizes.plot(x, ys, marker="o", label=name.replace("disk/record: ", ""))
        elif "p95" not in name:
            times.plot(x, ys, marker="o", linestyle="--" if expected == "chain" else "-", label=name)
    for c in checkpoints:
        times.annotate(f"{c['blocks']:,} blocks", (c["records"], 0.01), xycoords=("data", "axes fraction"),
                       fontsize=7, ha="center", color="gray")
    for axis, label in ((times, "milliseconds"), (sizes, "bytes per record")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("records on the chain")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3 if axis is times else 1)
    context = results["context"]
    times.set_title(f"Cost against chain size ({context['patients']} patients; dashed: whole-chain by design)",
                    fontsize=10)
    sizes.set_title("Disk per record", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
