"""`ehr node up|status|down` (processes that outlive the CLI) and `ehr demo` end to end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from ehr_client.errors import ConfigError
from ehr_client.storage.kubo import find_kubo_binary
from tests.cli.conftest import Cli, cli_env, import_wallets

EHR = str(Path(sys.executable).with_name("ehr"))


def _kubo_available() -> bool:
    try:
        find_kubo_binary()
    except ConfigError:
        return False
    return True


def _gone(pid: int) -> bool:
    """No live process with this pid, and none left in its process group."""
    try:
        if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            return False
    except psutil.NoSuchProcess:
        pass
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pid and proc.status() != psutil.STATUS_ZOMBIE:
                return False
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            continue
    return True


@pytest.fixture
def node_home(tmp_path: Path) -> Iterator[tuple[Cli, Path]]:
    """A home with no --rpc: commands find the node through `ehr node up`'s state."""
    home = tmp_path / "node-home"
    cli = Cli(cli_env(home, None, network="node-test"))
    try:
        yield cli, home
    finally:
        cli("node", "down", expect=None)


def _up(home: Path, *flags: str) -> None:
    env = {**os.environ, **cli_env(home, None, network="node-test")}
    done = subprocess.run([EHR, "node", "up", *flags], env=env, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr


def test_node_up_outlives_the_cli_and_down_stops_it(node_home: tuple[Cli, Path]) -> None:
    cli, home = node_home
    _up(home)  # a separate process that has exited by now
    status = cli.json("node", "status")
    assert status["anvil"]["running"] and status["anvil"]["chainId"] == 31337 and not status["kubo"]["running"]
    pid = status["anvil"]["pid"]
    assert (home / "node" / "anvil.pid").read_text().strip() == str(pid)
    assert "already running" in cli("node", "up").stdout

    import_wallets(cli, home, ["gov-a"])
    cli("deploy", wallet="gov-a")  # --rpc comes from the node state
    assert cli.json("consortium", "members")["threshold"] == 1

    assert f"anvil stopped (pid {pid})" in cli("node", "down").stdout
    assert _gone(pid) and not (home / "node" / "anvil.pid").exists()
    assert not cli.json("node", "status")["anvil"]["running"]


@pytest.mark.kubo
@pytest.mark.skipif(not _kubo_available(), reason="Kubo binary not built (run `make kubo` / tools/build-kubo.sh)")
def test_records_on_ipfs_through_node_up(node_home: tuple[Cli, Path], observation: Path, tmp_path: Path) -> None:
    cli, home = node_home
    _up(home, "--ipfs")
    status = cli.json("node", "status")
    assert status["kubo"]["running"] and status["kubo"]["url"].startswith("http://127.0.0.1:")
    import_wallets(cli, home, ["gov-a", "patient"])
    cli("deploy", wallet="gov-a")
    cli("patient", "register", wallet="patient")

    added = cli.json("--store", "ipfs", "record", "add", "patient", str(observation), wallet="patient")
    read = cli("--store", "ipfs", "record", "get", added["recordId"], wallet="patient")
    assert json.loads(read.stdout)["code"]["coding"][0]["code"] == "2345-7"
    assert cli.json("--store", "ipfs", "record", "verify", wallet="patient")[0]["ok"]
    cli("--store", "local", "record", "get", added["recordId"], wallet="patient", expect=6)  # not in LocalStore

    pids = [status["anvil"]["pid"], status["kubo"]["pid"]]
    cli("node", "down")
    assert all(_gone(pid) for pid in pids)


def test_demo_runs_end_to_end_and_leaves_no_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EHR_")}
    done = subprocess.run([EHR, "demo"], env={**env, "HOME": str(tmp_path)}, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for line in ("Deploy the contracts", "hospital admitted", "lab admitted", "doctor admitted",
                 "lab anchors record", "hospital anchors record", "hospital relays the signed grant",
                 "doctor's screen", "Glucose (LOINC 2345-7): 5.4 mmol/L", "stranger refused (AccessDenied)",
                 "doctor refused (AccessDenied)", "Audit trail", "opened record", "revoked access of doctor", "Done."):
        assert line in out, line
    assert "Traceback" not in done.stderr
    pid = int(re.search(r"anvil pid (\d+)", out).group(1))  # type: ignore[union-attr]
    assert f"anvil stopped (pid {pid})" in out
    assert _gone(pid)
