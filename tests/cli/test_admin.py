"""`ehr keys`, `ehr deploy`, `ehr consortium`, and the exit codes of common failures."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import PASSWORD, Cli, free_port


def test_members_lists_roles_and_governors(cli: Cli, world: dict[str, str]) -> None:
    listed = cli.json("consortium", "members")
    assert listed["threshold"] == 2 and listed["governors"] == [world["gov-a"], world["gov-b"]]
    roles = {m["address"]: m["role"] for m in listed["members"]}
    assert roles == {world["lab"]: "lab", world["hospital"]: "provider", world["doctor"]: "provider"}


def test_proposal_needs_a_governor_and_enough_approvals(cli: Cli, world: dict[str, str]) -> None:
    denied = cli("consortium", "propose", "admit", "stranger", "--role", "insurer", wallet="lab", expect=3)
    assert "not a governor" in denied.stderr
    proposed = cli("consortium", "propose", "admit", "stranger", "--role", "insurer", wallet="gov-a")
    proposal_id = proposed.stdout.split()[1].rstrip(":")
    early = cli("consortium", "execute", proposal_id, wallet="gov-a", expect=1)
    assert "ConsortiumNotEnoughApprovals" in early.stderr


def test_suspend_at_once_then_reinstate_through_a_proposal(cli: Cli, world: dict[str, str]) -> None:
    proposed = cli("consortium", "propose", "admit", "rotator", "--role", "auditor", wallet="gov-a")
    cli("consortium", "approve", proposed.stdout.split()[1].rstrip(":"), "--execute", wallet="gov-b")
    cli("consortium", "suspend", "rotator", wallet="gov-b")
    status = {m["address"]: m["suspended"] for m in cli.json("consortium", "members")["members"]}
    assert status[world["rotator"]] is True
    reinstate = cli("consortium", "propose", "reinstate", "rotator", wallet="gov-b")
    cli("consortium", "approve", reinstate.stdout.split()[1].rstrip(":"), "--execute", wallet="gov-a")
    status = {m["address"]: m["suspended"] for m in cli.json("consortium", "members")["members"]}
    assert status[world["rotator"]] is False


def test_new_wallet_and_key_listing(cli: Cli) -> None:
    created = cli("keys", "new", wallet="fresh")
    listed = cli.json("keys", "list", wallet="fresh")
    assert [k["kind"] for k in listed] == ["secp256k1", "x25519"]
    assert listed[0]["address"] in created.stdout
    duplicate = cli("keys", "new", wallet="fresh", expect=1)
    assert "already exists" in duplicate.stderr


def test_rotate_publishes_and_revoke_marks_on_chain_and_locally(cli: Cli, world: dict[str, str]) -> None:
    cli("keys", "publish", wallet="rotator")
    assert "already published" in cli("keys", "publish", wallet="rotator").stdout
    rotated = cli("keys", "rotate", wallet="rotator")
    assert "on-chain version 2" in rotated.stdout
    revoked = cli("keys", "revoke", "--version", "1", wallet="rotator")
    assert "on-chain version 1" in revoked.stdout
    versions = {k["version"]: k["revoked"] for k in cli.json("keys", "list", wallet="rotator") if k["kind"] == "x25519"}
    assert versions[1] is not None and versions[2] is None


def test_wrong_password_is_one_line(cli: Cli, world: dict[str, str]) -> None:
    result = cli("grant", "doctor", "--scopes", "lab", wallet="patient", env={"EHR_PASSWORD": "nope"}, expect=None)
    assert result.exit_code != 0
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1 and "password" in result.stderr


def test_password_file_wins_over_the_environment(cli: Cli, world: dict[str, str], tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    cli("--password-file", str(secret), "keys", "publish", wallet="doctor", env={"EHR_PASSWORD": "nope"})


def test_node_down_exits_5(cli: Cli, world: dict[str, str]) -> None:
    result = cli("--rpc", f"http://127.0.0.1:{free_port()}", "record", "list", "patient", expect=5)
    assert result.stderr.startswith("error: cannot reach the chain node") and result.stderr.count("\n") == 1


def test_storage_down_exits_5(cli: Cli, world: dict[str, str], lab_record: str) -> None:
    ipfs = ("--store", "ipfs", "--ipfs-api", f"http://127.0.0.1:{free_port()}")
    result = cli(*ipfs, "record", "get", lab_record, wallet="patient", expect=5)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_usage_errors_exit_2(cli: Cli, world: dict[str, str]) -> None:
    assert "not a record id" in cli("record", "get", "0x1234", expect=2).stderr
    cli("no-such-command", expect=2)
    cli("grant", "doctor", wallet="patient", expect=2)  # --scopes missing
    cli("grant", "doctor", "--scopes", "tonsils", wallet="patient", expect=2)
    cli("--wallet", "../escape", "keys", "list", expect=2)


def test_missing_deployment_file_is_a_clear_error(cli: Cli, world: dict[str, str], home: Path) -> None:
    result = cli("--network", "nowhere", "record", "list", "patient", expect=1)
    assert "no deployment file for network 'nowhere'" in result.stderr
    assert str(home / "deployments" / "nowhere.json") in result.stderr  # says where it looked
    assert "ehr --network nowhere --wallet ADMIN deploy" in result.stderr


def test_deploy_refuses_to_replace_a_live_deployment_without_force(cli: Cli, world: dict[str, str], home: Path) -> None:
    cli("--network", "cli-second", "deploy", wallet="gov-a")
    first = json.loads((home / "deployments" / "cli-second.json").read_text())
    refused = cli("--network", "cli-second", "deploy", wallet="gov-a", expect=1)
    assert "live deployment" in refused.stderr and "--force" in refused.stderr
    cli("--network", "cli-second", "deploy", "--force", wallet="gov-a")
    second = json.loads((home / "deployments" / "cli-second.json").read_text())
    assert second["contracts"]["RecordRegistry"] != first["contracts"]["RecordRegistry"]
    assert second["governors"] == [world["gov-a"]] and second["threshold"] == 1


def test_import_refuses_without_a_key_when_not_interactive(cli: Cli) -> None:
    result = cli("keys", "import", wallet="nokey", expect=1)
    assert "--key-file" in result.stderr


def test_fund_gives_a_new_wallet_gas_on_the_local_node(cli: Cli, world: dict[str, str], anvil) -> None:
    cli("keys", "new", wallet="newcomer")
    funded = cli("node", "fund", "newcomer", "--eth", "3")
    assert "now holds 3 ETH" in funded.stdout
    cli("patient", "register", wallet="newcomer")
    bad = cli("node", "fund", "nobody-here", expect=2)
    assert "neither an address" in bad.stderr
