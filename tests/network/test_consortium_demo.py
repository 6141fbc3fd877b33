"""`EHR_DEMO_CHAIN=consortium ehr demo`: the whole story, both parts, on four geth Clique validators."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psutil

EHR = str(Path(sys.executable).with_name("ehr"))


def test_consortium_demo_tells_both_stories_and_stops_every_node(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EHR_") or k == "EHR_GETH_BIN"}
    done = subprocess.run([EHR, "demo"], env={**env, "HOME": str(tmp_path), "EHR_DEMO_CHAIN": "consortium"},
                          capture_output=True, text=True, timeout=600)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "on a consortium chain" in out
    pids = [int(pid) for pid in re.findall(r"geth \S+ pid (\d+) at http://127\.0\.0\.1:\d+", out)]
    assert len(pids) == 5 and out.count("(validator 0x") == 4 and "(rpc node)" in out
    for line in ("lab anchors record", "hospital relays the signed grant", "Glucose (LOINC 2345-7): 5.4 mmol/L",
                 "stranger refused (AccessDenied)", "doctor refused (AccessDenied)", "Done.",
                 "released by", "doctor's read refused (AccessDenied)", "reading the erased record refused (RecordErased)"):
        assert line in out, line
    assert f"geth nodes stopped (pids {', '.join(map(str, pids))})" in out
    assert not [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert "Traceback" not in done.stderr


def test_unknown_demo_chain_is_refused_before_anything_starts(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EHR_")}
    done = subprocess.run([EHR, "demo"], env={**env, "HOME": str(tmp_path), "EHR_DEMO_CHAIN": "besu"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "EHR_DEMO_CHAIN='besu': use one of anvil, consortium" in done.stdout + done.stderr
    assert "pid" not in done.stdout
