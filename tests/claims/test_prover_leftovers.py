"""A prover killed while snarkjs runs leaves its witness input (the claim and its salt) behind; the
next prover removes it, and never a folder of a prover still running."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ehr_client.claims.prover import sweep_stale_work


def test_work_of_a_dead_prover_is_removed_and_a_live_one_kept(tmp_path: Path) -> None:
    dead_pid = subprocess.Popen(["true"])  # a pid that has exited and been reaped
    dead_pid.wait()
    dead = tmp_path / f"ehr-claim-{dead_pid.pid}-abc"
    live = tmp_path / f"ehr-claim-{os.getpid()}-def"
    other = tmp_path / "ehr-claim-notapid-ghi"
    for folder in (dead, live, other):
        folder.mkdir(mode=0o700)
        (folder / "input.json").write_text('{"value": "6130", "salt": "42"}')
    assert sweep_stale_work(tmp_path) == [dead]
    assert not dead.exists() and (live / "input.json").exists() and (other / "input.json").exists()
