"""`ehr record import` SIGKILLed (strace's fault injection) at the Nth open of the pack index or the Nth fsync
(pack, index, journal), then run again: every record lands once and reads back (held)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ehr_client.records import canonicalize
from tests.batch.conftest import observation
from tests.redteam6.conftest import Cli, store_root

POINTS = [("openat", 2), ("openat", 4), ("openat", 5), ("fsync", 1), ("fsync", 3), ("fsync", 6), ("fsync", 12)]


def _import_killed_at(cli: Cli, home: Path, call: str, when: int, *args: str) -> int:
    strace, ehr = shutil.which("strace"), shutil.which("ehr")
    assert strace is not None and ehr is not None
    only_index = ["-P", str(store_root(home) / "packs" / "index")] if call == "openat" else []
    argv = [strace, "-qq", "-f", "-o", "/dev/null", *only_index, "-e", f"trace={call}",
            "-e", f"inject={call}:signal=KILL:when={when}", ehr, "--wallet", "lab", *args]
    return subprocess.run(argv, env={**os.environ, **cli.env}, capture_output=True, timeout=300).returncode


@pytest.mark.parametrize(("call", "when"), POINTS, ids=[f"{call}-{when}" for call, when in POINTS])
def test_an_import_killed_at_a_store_call_and_run_again_lands_every_record_once(
        cli: Cli, world: dict[str, str], home: Path, tmp_path: Path, call: str, when: int) -> None:
    folder = tmp_path / "import"
    folder.mkdir()
    first = 7000 + 10 * POINTS.index((call, when))
    for i in range(3):
        (folder / f"obs-{i}.json").write_text(json.dumps(observation(first + i)))
    args = ("record", "import", str(folder), "--patient", "patient", "--batch-size", "2")
    listed_before = len(cli.json("record", "list", "patient")["records"])

    assert _import_killed_at(cli, home, call, when, *args) == -9
    records = cli.json(*args, wallet="lab")["records"]

    assert sorted(r["file"] for r in records) == ["obs-0.json", "obs-1.json", "obs-2.json"]
    assert len({r["recordId"] for r in records}) == 3
    assert len(cli.json("record", "list", "patient")["records"]) == listed_before + 3, "no record anchored twice"
    for record in records:
        out = tmp_path / f"{record['file']}.read"
        cli("record", "get", record["recordId"], "--out", str(out), wallet="patient")
        assert out.read_bytes() == canonicalize(json.loads((folder / record["file"]).read_text()))
