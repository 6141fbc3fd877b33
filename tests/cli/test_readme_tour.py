"""The README's 60-second tour, run as written (whatever it says today) against a fresh home and
the Anvil its own `ehr node up` starts; it must also stop that node."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli.docrunner import ROOT, clean_env, run_page, sh_blocks, stop_nodes

pytestmark = pytest.mark.slow  # about a minute: some thirty `ehr` processes against a real Anvil


def test_readme_tour_runs_as_written(tmp_path: Path) -> None:
    blocks = sh_blocks((ROOT / "README.md").read_text(), under="A 60-second tour")
    tour = blocks[0]  # the tour; the section's later blocks illustrate (what a wallet shows)
    for example in re.findall(r"examples/[\w.-]+", tour):
        assert (ROOT / example).exists(), f"the tour uses {example}, which is not shipped"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = clean_env(tmp)
    try:
        done = run_page(tour, work=tmp_path / "work", env=env)
    finally:
        left_running = stop_nodes(tmp, env)
    assert done.returncode == 0, f"the tour failed:\n{done.stderr[-4000:]}"
    assert left_running == [], "the tour must end with `ehr node down`"
