"""`ehr grant`, `ehr relay`, `ehr revoke` and `ehr audit`: the consent story through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Cli


def test_signed_grant_relayed_then_signed_revocation(
    cli: Cli, world: dict[str, str], lab_record: str, tmp_path: Path
) -> None:
    signed_file = tmp_path / "grant.json"
    signing = cli("grant", "doctor", "--scopes", "lab", "--for", "24h", "--sign-only", "--out", str(signed_file),
                  wallet="patient")
    signed = json.loads(signed_file.read_text())
    assert signed["typedData"]["primaryType"] == "Grant"
    assert signed["typedData"]["message"]["grantee"] == world["doctor"]
    assert signed["signature"].startswith("0x") and signed.get("keyShare") is None  # no keys before consent
    assert "ehr share" in " ".join(signing.stderr.split())  # wrapped at any width
    early = cli.json("share", "doctor", "--scopes", "lab", wallet="patient")
    assert early["keyShare"] is None and early["sharedRecords"] == 0  # not in force yet: nothing sealed

    cli("relay", str(signed_file), wallet="hospital")
    shared = cli.json("share", "doctor", "--scopes", "lab", wallet="patient")
    assert shared["sharedRecords"] >= 1 and shared["keyShare"].startswith("bafk")
    signed["keyShare"] = shared["keyShare"]

    read = cli("record", "get", lab_record, "--key-share", signed["keyShare"], wallet="doctor")
    assert json.loads(read.stdout)["valueQuantity"]["unit"] == "mmol/L"

    revocation = cli("revoke", "doctor", "--sign-only", wallet="patient")  # to stdout, for a pipe
    assert json.loads(revocation.stdout)["typedData"]["primaryType"] == "Revoke"
    cli("relay", "-", wallet="hospital", input=revocation.stdout)
    denied = cli("record", "get", lab_record, "--key-share", signed["keyShare"], wallet="doctor", expect=3)
    assert denied.stderr.startswith("error: ") and "may not read" in denied.stderr

    trail = cli.json("audit", "patient")
    events = [(e["name"], e["actor"]) for e in trail]
    assert ("AccessGranted", world["patient"]) in events
    assert ("AccessRequested", world["doctor"]) in events
    assert events[-1] == ("AccessRevoked", world["patient"])
    assert all(e["txHash"].startswith("0x") and e["timestamp"] > 0 for e in trail)


def test_replayed_signed_grant_says_already_relayed(cli: Cli, world: dict[str, str], tmp_path: Path) -> None:
    signed_file = tmp_path / "grant.json"
    cli("grant", "hospital", "--scopes", "vitals", "--sign-only", "--no-share-keys", "--out", str(signed_file),
        wallet="patient")
    cli("relay", str(signed_file), wallet="doctor")
    replay = cli("relay", str(signed_file), wallet="doctor")  # the grant is in force: not an error
    assert replay.stdout.startswith("already relayed") and "in force" in replay.stdout


def test_direct_grant_shares_keys_and_stranger_is_refused(cli: Cli, world: dict[str, str], lab_record: str) -> None:
    granted = cli("grant", "doctor", "--scopes", "lab", "--for", "1h", wallet="patient")
    share = granted.stdout.split("key share for")[1].split(":")[1].split()[0]
    cli("record", "get", lab_record, "--key-share", share, wallet="doctor")
    stranger = cli("record", "get", lab_record, "--key-share", share, wallet="stranger", expect=3)
    assert stranger.stderr.count("\n") == 1
    cli("revoke", "doctor", wallet="patient")


def test_grant_to_a_non_member_is_a_clear_error(cli: Cli, world: dict[str, str]) -> None:
    result = cli("grant", "stranger", "--scopes", "lab", wallet="patient", expect=1)
    assert "is not a consortium member" in result.stderr and "nothing was granted" in result.stderr


def test_audit_table_names_known_wallets(cli: Cli, world: dict[str, str]) -> None:
    table = cli("audit", "patient").stdout
    assert "registered as patient" in table and "granted amend on lab to lab" in table
