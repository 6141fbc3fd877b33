#!/usr/bin/env python3
"""Static analysis gate: compile offline, run slither, compare with the triage file.

    .venv/bin/python tools/slither/run.py [--out .build/slither] [--summary FILE]

Prints findings by severity and every medium/high finding with its triage status, lists the
external calls the contracts make, and writes a JSON summary (default `<out>/summary.json`).
Exit status: 0 when every medium/high finding is triaged and no triage entry is stale, 1 when
not, 2 when the analysis could not run. When the process may create a network namespace
(`unshare -n`, as root), slither runs inside one, so it provably reaches no network.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from analyze import external_calls, run_detectors
from build_info import REPO_ROOT, write_build_info
from triage import TRIAGE_FILE, load_triage, triage

from ehr_client.errors import EHRError

ISOLATED_ENV = "EHR_SLITHER_ISOLATED"
SEVERITIES = ("High", "Medium", "Low", "Informational", "Optimization")


def _can_isolate() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None or os.environ.get(ISOLATED_ENV):
        return False
    return subprocess.run([unshare, "-n", "true"], capture_output=True, check=False).returncode == 0


def analyse(out_dir: Path, summary_path: Path, triage_path: Path) -> int:
    started = time.monotonic()
    build_info = write_build_info(out_dir)
    compiled = time.monotonic()
    findings, detector_count = run_detectors(out_dir)
    calls = external_calls(out_dir)
    result = triage(findings, load_triage(triage_path))
    finished = time.monotonic()

    by_severity = Counter(f.impact for f in findings)
    print(f"slither: {detector_count} detectors, {len(findings)} results "
          f"({', '.join(f'{s} {by_severity.get(s, 0)}' for s in SEVERITIES)}); "
          f"compile {compiled - started:.1f}s, analysis {finished - compiled:.1f}s")
    for finding, entry in result.triaged:
        print(f"  triaged   {finding.impact:<6} {finding.detector:<24} {finding.contract}.{finding.function}")
    for finding in result.untriaged:
        print(f"  UNTRIAGED {finding.impact:<6} {finding.detector:<24} {finding.contract}.{finding.function}\n"
              f"            {finding.description.splitlines()[0]}")
    for entry in result.stale:
        print(f"  STALE triage entry: {entry.detector} {entry.contract}.{entry.function} matches no finding")
    print(f"external calls: {len(calls)} (from {len({(c.contract, c.function) for c in calls})} functions)")

    summary = {
        "build_info": str(build_info),
        "detectors": detector_count,
        "by_severity": {s: by_severity.get(s, 0) for s in SEVERITIES},
        "by_detector": dict(sorted(Counter(f"{f.impact}:{f.detector}" for f in findings).items())),
        "triaged": [{**asdict(f), "justification": a.justification} for f, a in result.triaged],
        "untriaged": [asdict(f) for f in result.untriaged],
        "stale": [asdict(a) for a in result.stale],
        "external_calls": [c.as_dict() for c in calls],
        "seconds": {"compile": round(compiled - started, 2), "analysis": round(finished - compiled, 2)},
    }
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return 1 if result.untriaged or result.stale else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / ".build" / "slither")
    parser.add_argument("--summary", type=Path, default=None)
    parser.add_argument("--triage", type=Path, default=TRIAGE_FILE)
    args = parser.parse_args(argv)
    if _can_isolate():
        command = ["unshare", "-n", sys.executable, str(Path(__file__).resolve()), *(argv or sys.argv[1:])]
        return subprocess.run(command, env={**os.environ, ISOLATED_ENV: "1"}, check=False).returncode
    out_dir = args.out.resolve()
    try:
        return analyse(out_dir, (args.summary or out_dir / "summary.json").resolve(), args.triage.resolve())
    except EHRError as exc:
        print(f"slither gate could not run: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
