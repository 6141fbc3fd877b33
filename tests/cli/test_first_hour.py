"""A new user's first hour (issue 17): startup, where state lives, options anywhere, checksums,
JSON on request, `monitor --once` that says what it checked, and `ehr doctor`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from eth_utils import to_checksum_address

from ehr_client.cli import app
from ehr_client.cli._lazy import COMMANDS, hoist_global_options, load
from ehr_client.dev.node import AnvilNode
from tests.cli.conftest import Cli, cli_env, import_wallets


def _words(text: str | None) -> str:
    return " ".join((text or "").split())


@pytest.fixture
def fresh(tmp_path: Path, anvil: AnvilNode) -> tuple[Cli, Path]:
    """A home of its own on the session's Anvil, with no EHR_DEPLOYMENTS_DIR: the defaults a user gets."""
    home = tmp_path / "home"
    home.mkdir()
    env = cli_env(home, anvil.rpc_url, network="first-hour")
    del env["EHR_DEPLOYMENTS_DIR"]
    return Cli(env), home


def test_help_loads_no_subcommand_module() -> None:
    code = ("import sys\nfrom ehr_client.cli import app\n"
            "try:\n    app(['--help'], prog_name='ehr')\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('web3', 'fastapi', 'umbral_pre', 'ehr_client.client') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert "doctor" in done.stdout and "record" in done.stdout  # the listing is complete
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_lazy_summary_matches_the_command(name: str) -> None:
    command = load(name, COMMANDS[name])
    assert _words(command.help).startswith(_words(COMMANDS[name].summary)), (command.help, COMMANDS[name].summary)


def test_global_options_work_after_the_subcommand(cli: Cli, world: dict[str, str], lab_record: str) -> None:
    listed = json.loads(cli("keys", "list", "--json", "--wallet", "patient").stdout)
    assert listed[0]["address"] == world["patient"]
    read = cli("record", "get", lab_record, "--wallet=patient")
    assert json.loads(read.stdout)["resourceType"] == "Observation"


def test_hoisting_never_takes_an_option_value_for_an_option() -> None:
    root = typer.main.get_command(app)
    ctx = root.make_context("ehr", ["--help"], resilient_parsing=True)
    rid = "0x" + "ab" * 32
    # --out takes a value here, so "--wallet" is that value and stays
    assert hoist_global_options(root, ctx, ["record", "get", rid, "--out", "--wallet"]) == \
        ["record", "get", rid, "--out", "--wallet"]
    assert hoist_global_options(root, ctx, ["keys", "list", "--wallet"]) == ["keys", "list", "--wallet"]
    assert hoist_global_options(root, ctx, ["audit", "--record", rid, "--wallet", "patient", "-v"]) == \
        ["--wallet", "patient", "-v", "audit", "--record", rid]
    assert hoist_global_options(root, ctx, ["node", "fund", "--", "--wallet", "x"]) == \
        ["node", "fund", "--", "--wallet", "x"]
    assert hoist_global_options(root, ctx, ["no-such", "--wallet", "x"]) == ["no-such", "--wallet", "x"]


def test_bad_eip55_checksum_is_refused_with_the_right_spelling(cli: Cli, world: dict[str, str]) -> None:
    good = world["stranger"]
    flipped = next(i for i, c in enumerate(good) if i > 1 and c.isalpha())
    bad = good[:flipped] + good[flipped].swapcase() + good[flipped + 1:]
    refused = cli("node", "fund", bad, expect=2)
    assert "EIP-55" in refused.stderr and good in refused.stderr
    for spelling in (good.lower(), "0x" + good[2:].upper(), good):  # no checksum, or the right one
        assert good in cli("node", "fund", spelling).stdout
    assert to_checksum_address(bad) == good


def test_deployment_lives_in_the_home_and_is_found_from_anywhere(
        fresh: tuple[Cli, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli, home = fresh
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    import_wallets(cli, home, ["gov-a"])
    deployed = cli.json("deploy", wallet="gov-a")
    assert deployed["file"] == str(home / "deployments" / "first-hour.json")
    assert set(deployed["contracts"]) >= {"Consortium", "RecordRegistry"} and deployed["threshold"] == 1
    assert not (elsewhere / "deployments").exists()

    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(other)
    assert cli.json("consortium", "members")["governors"] == [deployed["deployer"]]

    unknown = cli("--network", "nowhere", "consortium", "members", expect=1).stderr
    assert str(home / "deployments" / "nowhere.json") in unknown and str(other / "deployments") in unknown
    assert "ehr --network nowhere --wallet ADMIN deploy" in unknown
    pointed = cli("--network", "nowhere", "consortium", "members", "--json",
                  "--deployment", str(home / "deployments" / "first-hour.json"))
    assert json.loads(pointed.stdout)["threshold"] == 1


def test_creating_commands_print_json(fresh: tuple[Cli, Path]) -> None:
    cli, home = fresh
    import_wallets(cli, home, ["gov-a"])
    cli("deploy", wallet="gov-a")
    created = cli.json("keys", "new", wallet="newbie")
    assert created["wallet"] == "newbie" and created["address"].startswith("0x")
    assert [k["kind"] for k in created["keys"]] == ["secp256k1", "x25519"]
    proposed = cli.json("consortium", "propose", "admit", "newbie", "--role", "lab", "--execute", wallet="gov-a")
    assert proposed["action"] == "admit" and proposed["target"] == created["address"] and proposed["role"] == "lab"
    assert proposed["executed"] and proposed["executeTx"]["txHash"].startswith("0x")
    members = cli.json("consortium", "members")["members"]
    assert {"address": created["address"], "role": "lab"}.items() <= members[0].items()


def test_deploy_checks_its_arguments_before_unlocking(fresh: tuple[Cli, Path]) -> None:
    cli, home = fresh
    import_wallets(cli, home, ["gov-a"])
    refused = cli("deploy", "--threshold", "3", wallet="gov-a", env={"EHR_PASSWORD": "wrong"}, expect=2)
    assert "--threshold" in refused.stderr  # not "wrong password": the key was never unlocked
    assert not (home / "deployments").exists()


def test_monitor_once_says_which_blocks_had_no_alerts(fresh: tuple[Cli, Path]) -> None:
    cli, home = fresh
    import_wallets(cli, home, ["gov-a"])
    cli("deploy", wallet="gov-a")
    first = cli("monitor", "--once")
    assert first.stdout == "" and "no alerts in blocks " in first.stderr
    again = cli("monitor", "--once")
    assert "no alerts in" in again.stderr


def test_doctor_is_happy_only_when_everything_is(fresh: tuple[Cli, Path], anvil: AnvilNode) -> None:
    cli, home = fresh
    sick = cli("doctor", "--json", expect=1)
    report = json.loads(sick.stdout)
    status = {c["name"]: c for c in report["checks"]}
    assert not report["ok"] and status["node"]["status"] == "ok" and status["anvil"]["status"] == "ok"
    assert status["deployment"]["status"] == "fail" and "deploy" in status["deployment"]["fix"]
    assert status["keystore"]["status"] == "fail" and "keys new" in status["keystore"]["fix"]

    import_wallets(cli, home, ["gov-a"])
    cli("deploy", wallet="gov-a")
    healthy = json.loads(cli("doctor", "--json", "--wallet", "gov-a").stdout)
    assert healthy["ok"], healthy
    assert "all good" in cli("doctor", wallet="gov-a").stdout
    unnamed = json.loads(cli("doctor", "--json").stdout)  # no --wallet: a note naming the wallets, not a failure
    assert unnamed["ok"] and "gov-a" in next(c for c in unnamed["checks"] if c["name"] == "keystore")["detail"]

    anvil_down = cli("--rpc", "http://127.0.0.1:9", "doctor", "--wallet", "gov-a", expect=1)
    assert "FAIL" in anvil_down.stdout and "fix --rpc" in anvil_down.stdout
    wrong_wallet = json.loads(cli("doctor", "--json", "--wallet", "nobody", expect=1).stdout)
    keystore = next(c for c in wrong_wallet["checks"] if c["name"] == "keystore")
    assert "gov-a" in keystore["detail"] and keystore["status"] == "fail"


def test_node_up_ipfs_makes_kubo_the_default_store(tmp_path: Path, observation: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = cli_env(home, None, network="first-hour-ipfs")
    del env["EHR_STORE"]  # nothing says which store: the home's state decides
    cli = Cli(env)
    ehr = str(Path(sys.executable).with_name("ehr"))
    try:
        done = subprocess.run([ehr, "node", "up", "--ipfs"], env={**os.environ, **env}, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "store records on this Kubo node" in done.stderr
        assert cli.json("node", "status")["store"] == {"kind": "ipfs", "recordedByNodeUp": True}
        import_wallets(cli, home, ["gov-a", "patient"])
        cli("deploy", wallet="gov-a")
        cli("patient", "register", wallet="patient")
        added = cli.json("record", "add", "patient", str(observation), wallet="patient")
        read = cli("record", "get", added["recordId"], wallet="patient")
        assert json.loads(read.stdout)["code"]["coding"][0]["code"] == "2345-7"
        assert not (home / "store").exists()  # nothing went to the embedded store
        cli("--store", "local", "record", "get", added["recordId"], wallet="patient", expect=6)
        doctor = json.loads(cli("doctor", "--json", wallet="patient").stdout)
        assert next(c for c in doctor["checks"] if c["name"] == "store")["detail"].startswith("Kubo ")
    finally:
        cli("node", "down", expect=None)


def test_arguments_are_checked_before_the_key_is_unlocked(cli: Cli, world: dict[str, str], tmp_path: Path) -> None:
    wrong = {"EHR_PASSWORD": "not the password",  # a usage error must win over a wrong password: no scrypt ran
             "EHR_CUSTODIANS": "http://127.0.0.1:9"}
    for argv in (["custodian", "share", "doctor", "--scopes", "tonsils"],
                 ["custodian", "share", "doctor", "--scopes", "lab", "--for", "soon"],
                 ["custodian", "read", "0x12"],
                 ["record", "rotate", "0x12"],
                 ["consortium", "propose", "admit", "lab", "--role", "lab", "--window", "soon"]):
        refused = cli(*argv, wallet="gov-a", env=wrong, expect=2)
        assert "password" not in refused.stderr.lower(), (argv, refused.stderr)
    existing = tmp_path / "taken.json"
    existing.write_text("{}")
    refused = cli("custodian", "read", "0x" + "ab" * 32, "--out", str(existing), wallet="doctor", env=wrong, expect=1)
    assert "exists" in refused.stderr and existing.read_text() == "{}"


def test_shell_completion_offers_subcommands() -> None:
    ehr = str(Path(sys.executable).with_name("ehr"))
    for words, cword, expected in (("ehr re", "1", {"record", "relay", "revoke"}), ("ehr record g", "2", {"get"})):
        env = {**os.environ, "_EHR_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": cword}
        done = subprocess.run([ehr], env=env, capture_output=True, text=True, timeout=60)
        assert set(done.stdout.split()) == expected, done.stderr
