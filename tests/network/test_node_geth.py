"""`ehr node up --engine geth`: the local chain users run, durable through kill -9, found by later commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Cli, cli_env, import_wallets

EHR = str(Path(sys.executable).with_name("ehr"))


@pytest.fixture
def home(tmp_path: Path) -> Iterator[tuple[Cli, Path]]:
    home = tmp_path / "geth-home"
    cli = Cli(cli_env(home, None, network="geth-node"))
    try:
        yield cli, home
    finally:
        cli("node", "down", expect=None)


def _up(home: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **cli_env(home, None, network="geth-node")}
    done = subprocess.run([EHR, "node", "up", "--engine", "geth", *flags], env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _observation(path: Path, value: float) -> Path:
    path.write_text(json.dumps({
        "resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]},
        "valueQuantity": {"value": value, "unit": "mmol/L"}}))
    return path


def test_geth_node_keeps_acknowledged_records_through_kill_9(home: tuple[Cli, Path], tmp_path: Path) -> None:
    cli, home_dir = home
    assert "created a one-validator chain" in _up(home_dir).stdout
    status = cli.json("node", "status")
    assert status["geth"]["running"] and status["geth"]["chainId"] == 31415 and not status["anvil"]["running"]
    import_wallets(cli, home_dir, ["gov-a", "patient"])
    cli("deploy", wallet="gov-a")  # --rpc from the node state; no funding step: the genesis funded the wallets
    cli("patient", "register", wallet="patient")
    added = [cli.json("record", "add", "patient", str(_observation(tmp_path / f"o{i}.json", 5.0 + i)),
                      wallet="patient")["recordId"] for i in range(3)]

    os.killpg(status["geth"]["pid"], signal.SIGKILL)  # a crash: nothing flushed on purpose
    assert not cli.json("node", "status")["geth"]["running"]
    env = {**os.environ, **cli_env(home_dir, None, network="geth-node")}
    again = subprocess.run([EHR, "node", "up"], env=env, capture_output=True, text=True, timeout=180)
    assert again.returncode == 0 and "geth up" in again.stdout  # no --engine: the home's geth chain, from its data

    listed = cli.json("record", "list", "patient", wallet="patient")
    assert sorted(r["recordId"] for r in listed["records"]) == sorted(added) and listed["skipped"] == []
    for i, record_id in enumerate(added):
        read = json.loads(cli("record", "get", record_id, wallet="patient").stdout)
        assert read["valueQuantity"]["value"] == 5.0 + i
    assert cli.json("record", "add", "patient", str(_observation(tmp_path / "after.json", 9.9)), wallet="patient")


def test_one_local_chain_at_a_time_and_a_bad_engine_is_refused(home: tuple[Cli, Path]) -> None:
    cli, home_dir = home
    result = cli("node", "up", "--engine", "besu", expect=None)
    assert result.exit_code != 0 and "--engine 'besu': use one of anvil, geth" in result.output
    _up(home_dir)
    assert "geth already running" in cli("node", "up").stdout  # no --engine: the home keeps a geth chain
    result = cli("node", "up", "--engine", "anvil", expect=None)  # Anvil while geth runs
    assert result.exit_code != 0 and "a local geth chain is running" in result.output
    pid = cli.json("node", "status")["geth"]["pid"]
    assert f"geth stopped (pid {pid})" in cli("node", "down").stdout
    assert not cli.json("node", "status")["geth"]["running"]
