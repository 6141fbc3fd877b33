"""How long `ehr` takes to start, against the bare interpreter in the same run.

    .venv/bin/python -m bench.startup [--runs 15] [--code DIR ...]

`--code DIR` (repeatable) times that checkout's ehr_client (through PYTHONPATH), e.g. the commit
before a change next to this one, so a before/after pair comes from one machine under one load. Writes
bench/results/startup.json and prints a table. Medians; runs interleaved so load drifts hit all
commands alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EHR = ["-c", "import sys; from ehr_client.cli import main; sys.argv[0] = 'ehr'; main()"]
COMMANDS = {
    "python -c pass (baseline)": ["-c", "pass"],
    "ehr --help": [*EHR, "--help"],
    "ehr keys --help": [*EHR, "keys", "--help"],
    "ehr keys list (a home, no key unlocked)": [*EHR, "keys", "list"],
    "ehr record get --help": [*EHR, "record", "get", "--help"],
}


def _once(argv: list[str], env: dict[str, str], cwd: str) -> float:
    """One run; from `cwd`, since `python -c` puts the current directory ahead of PYTHONPATH."""
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--code", type=Path, action="append", help="checkout whose ehr_client to time (default: this one)")
    args = parser.parse_args()
    codes = [c.resolve() for c in args.code or [ROOT]]
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="ehr-bench-startup-") as home:
        envs = {code: {**os.environ, "PYTHONPATH": str(code), "EHR_HOME": home, "COLUMNS": "120"} for code in codes}
        for _ in range(args.runs):
            for name, argv in COMMANDS.items():
                for code in codes if "baseline" not in name else codes[:1]:
                    label = name if len(codes) == 1 or "baseline" in name else f"{name} [{code.name}]"
                    times.setdefault(label, []).append(_once(argv, envs[code], home))
    medians = {name: statistics.median(values) for name, values in times.items()}
    baseline = medians["python -c pass (baseline)"]
    helps = {name: m for name, m in medians.items() if name.startswith("ehr --help")}
    result = {
        "codes": [str(c) for c in codes], "runs": args.runs, "loadavg": [load_before, os.getloadavg()],
        "median_s": medians, "ratio_to_baseline": {name: m / baseline for name, m in medians.items()},
        "target_ehr_help_s": 0.4,
    }
    print(f"{'command':60} {'median s':>9} {'x python':>9}")
    for name, median in medians.items():
        print(f"{name:60} {median:9.3f} {median / baseline:9.1f}")
    for name, median in helps.items():
        print(f"{name} <= 0.4 s: {'PASS' if median <= 0.4 else 'MISS'}")
    print(f"load average {load_before[0]:.1f} -> {os.getloadavg()[0]:.1f} (2 cores shared)")
    out = ROOT / "bench" / "results" / "startup.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
