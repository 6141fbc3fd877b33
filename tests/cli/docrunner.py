"""Run the `sh` blocks of a Markdown page as a user would: in order, in one shell, from a work
directory that has the repository's examples/, against a fresh home and a node the page starts.

Used by the README tour test and the per-role pages under docs/, so none of them can drift from
what the CLI does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EHR = Path(sys.executable).with_name("ehr")
_FENCE = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)


def sh_blocks(markdown: str, *, under: str | None = None) -> list[str]:
    """The fenced sh blocks of `markdown`, or only those in the section whose heading contains `under`."""
    if under is not None:
        start = next(m.end() for m in re.finditer(r"^#+ .*$", markdown, re.MULTILINE) if under in m.group())
        following = re.compile(r"^#{1,%d} " % len(markdown[:start].splitlines()[-1].split()[0]), re.MULTILINE)
        end_match = following.search(markdown, start)
        markdown = markdown[start:end_match.start() if end_match else len(markdown)]
    return [m.group(1) for m in _FENCE.finditer(markdown)]


def clean_env(tmp: Path) -> dict[str, str]:
    """The caller's environment without EHR_* settings, with the venv first on PATH and a private
    TMPDIR (so `mktemp -d` homes land under the test's folder). Keys use a low scrypt cost (test-only)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EHR_") or k in ("EHR_KUBO_BIN", "EHR_ANVIL_BIN")}
    env.update(PATH=f"{EHR.parent}{os.pathsep}{env.get('PATH', '')}", TMPDIR=str(tmp), EHR_SCRYPT_N="16",
               COLUMNS="160", PYTHONPATH=str(ROOT))
    return env


def run_page(script: str, *, work: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run `script` with bash -euo pipefail (and -x, so a failure shows the command) in `work`."""
    work.mkdir(parents=True, exist_ok=True)
    examples = work / "examples"
    if not examples.exists():
        examples.symlink_to(ROOT / "examples", target_is_directory=True)
    return subprocess.run(["bash", "-euxo", "pipefail", "-c", script], cwd=work, env=env, capture_output=True,
                          text=True, timeout=timeout)


def stop_nodes(tmp: Path, env: dict[str, str]) -> list[Path]:
    """`ehr node down` in every home under `tmp` whose node state says a node was left running."""
    left = []
    for state in tmp.glob("**/node/anvil.json"):
        home = state.parent.parent
        left.append(home)
        subprocess.run([str(EHR), "--home", str(home), "node", "down"], env=env, capture_output=True, timeout=60)
    return left
