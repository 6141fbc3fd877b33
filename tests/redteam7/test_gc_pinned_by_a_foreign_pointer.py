"""An erasure killed after its tombstone, before it unpinned the record's package, leaves the ciphertext
for `ehr storage gc` to collect ("erased"). A hostile author anchors a batch whose manifest pointer is
that package's CID (public in RecordAdded): gc then keeps the erased record's ciphertext for good."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ehr_client.dev.node import AnvilNode
from tests.cli.conftest import Cli, anvil, cli, home, observation, world  # noqa: F401  (fixtures)
from tests.redteam7.test_gc_stopped_by_a_foreign_pointer import anchor_foreign_batch, store_files


def ehr_killed_at_unlink_of(cli: Cli, path: Path, *args: str, wallet: str) -> subprocess.CompletedProcess[str]:
    """Run `ehr` as its own process, SIGKILLed (strace's fault injection) the moment it unlinks `path`."""
    strace, ehr = shutil.which("strace"), shutil.which("ehr")
    assert strace is not None and ehr is not None
    argv = [strace, "-qq", "-f", "-o", "/dev/null", "-P", str(path), "-e", "trace=unlink,unlinkat",
            "-e", "inject=unlink,unlinkat:signal=KILL", ehr, "--wallet", wallet, *args]
    return subprocess.run(argv, env={**os.environ, **cli.env}, capture_output=True, text=True, timeout=300)


def test_a_foreign_pointer_keeps_an_erased_records_ciphertext(cli: Cli, home: Path, world: dict[str, str], anvil: AnvilNode,
                                                            observation: Path) -> None:
    before = store_files(home)
    record_id = cli.json("record", "add", "patient", str(observation), wallet="lab")["recordId"]
    (package,) = store_files(home) - before
    killed = ehr_killed_at_unlink_of(cli, package, "record", "erase", record_id, "--yes",
                                     "--custodian", "http://127.0.0.1:9", wallet="patient")  # none holds a fragment of it
    assert killed.returncode != 0 and package.exists(), killed.stderr
    aged = package.stat().st_mtime - 2 * 86400  # past gc's default grace of a day
    os.utime(package, (aged, aged))
    dry = cli.json("storage", "gc", wallet="lab")
    assert package.name in dry["erased"], dry  # what gc collects for an interrupted erasure

    anchor_foreign_batch(anvil.rpc_url, home, world["patient"], package.name)

    cli("storage", "gc", "--delete", wallet="lab", expect=None)
    assert not package.exists(), "the erased record's ciphertext is still in the store after gc --delete"
