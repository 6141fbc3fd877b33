"""The README's runnable example keeps working."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_example_runs_and_leaves_nothing_behind(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")], capture_output=True,
                            text=True, timeout=180, cwd=ROOT, env={**os.environ, "TMPDIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []  # its node, store and state went with it
    assert "doctor read 2345-7 verified against the chain" in result.stdout
    assert "after revoke:" in result.stdout and "may not read record" in result.stdout
    assert "AccessRequested" in result.stdout and "AccessRevoked" in result.stdout
