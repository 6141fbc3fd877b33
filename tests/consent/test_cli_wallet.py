"""The consent a wallet shows, through the `ehr` CLI: print the typed data, sign it elsewhere,
relay the signature; refusals exit 3, replays say "already relayed"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data

from tests.cli.conftest import Cli
from tests.consent.conftest import patient_key


def _sign(typed: dict[str, Any], key: str) -> str:
    return "0x" + bytes(Account.sign_message(encode_typed_data(full_message=typed), key).signature).hex()


def _nonce(cli: Cli, world: dict[str, str], grantee: str) -> int:
    typed = json.loads(cli("revoke", grantee, "--print-typed-data", wallet="patient").stdout)
    return int(typed["message"]["nonce"])


def test_print_typed_data_is_exactly_what_eth_sign_typed_data_v4_takes(
    cli: Cli, world: dict[str, str], tmp_path: Path
) -> None:
    printed = cli("grant", "doctor", "--scopes", "lab,mental-health", "--purpose", "research", "--for", "7d",
                  "--deadline", "1h", "--no-share-keys", "--print-typed-data", wallet="patient")
    typed = json.loads(printed.stdout)
    assert set(typed) == {"types", "primaryType", "domain", "message"} and typed["primaryType"] == "Grant"
    assert typed["domain"]["name"] == "EHR Consent (cli-test)" and typed["domain"]["version"] == "2"
    message = typed["message"]
    assert message["categories"]["lab"] is True and message["categories"]["mentalHealth"] is True
    assert sum(message["categories"].values()) == 2 and message["mayAmend"] is False
    assert message["purpose"] == "research"
    assert message["grantEndsAt"] - message["signatureValidUntil"] == 7 * 86400 - 3600
    assert (message["patient"], message["grantee"]) == (world["patient"], world["doctor"])
    assert "eth_signTypedData_v4" in printed.stderr

    file = tmp_path / "typed.json"
    file.write_text(printed.stdout)
    relayed = cli.json("relay", str(file), "--signature", _sign(typed, patient_key()), wallet="hospital")
    assert relayed["relayed"] == "grant" and relayed["alreadyRelayed"] is False and relayed["tx"]["gasUsed"] > 0
    # relaying the same consent again: it is in force, nothing is sent
    again = cli("relay", str(file), "--signature", _sign(typed, patient_key()), wallet="hospital")
    assert again.stdout.startswith("already relayed") and "in force" in again.stdout
    assert _nonce(cli, world, "doctor") == message["nonce"] + 1
    cli("revoke", "doctor", wallet="patient")


def test_relay_refuses_a_consent_for_another_deployment_before_sending(
    cli: Cli, world: dict[str, str], tmp_path: Path
) -> None:
    typed = json.loads(cli("grant", "doctor", "--scopes", "lab", "--no-share-keys", "--print-typed-data",
                           wallet="patient").stdout)
    before = _nonce(cli, world, "doctor")
    for field, value in (("name", "EHR Consent (production)"), ("version", "1"), ("chainId", 1),
                         ("verifyingContract", world["stranger"])):
        other = {**typed, "domain": {**typed["domain"], field: value}}
        file = tmp_path / f"{field}.json"
        file.write_text(json.dumps(other))
        refused = cli("relay", str(file), "--signature", _sign(other, patient_key()), wallet="hospital", expect=3)
        assert refused.stderr.startswith("error: this consent was signed for") and "this deployment is" in refused.stderr
    assert _nonce(cli, world, "doctor") == before  # nothing reached the chain


def test_relay_refuses_an_altered_field_or_another_signer_with_exit_3(
    cli: Cli, world: dict[str, str], tmp_path: Path
) -> None:
    typed = json.loads(cli("grant", "doctor", "--scopes", "lab", "--no-share-keys", "--print-typed-data",
                           wallet="patient").stdout)
    signature = _sign(typed, patient_key())
    altered = json.loads(json.dumps(typed))
    altered["message"]["categories"]["genomics"] = True
    file = tmp_path / "altered.json"
    file.write_text(json.dumps(altered))
    refused = cli("relay", str(file), "--signature", signature, wallet="hospital", expect=3)
    assert "not by patient" in refused.stderr
    file.write_text(json.dumps(typed))
    stranger_key = "0x" + "5" * 64
    refused = cli("relay", str(file), "--signature", _sign(typed, stranger_key), wallet="hospital", expect=3)
    assert Account.from_key(stranger_key).address in refused.stderr
    bad = cli("relay", str(file), "--signature", "0x1234", wallet="hospital", expect=1)
    assert "65 bytes" in bad.stderr


def test_signed_extension_relayed_first_cannot_outlive_the_signed_revocation(
    cli: Cli, world: dict[str, str], tmp_path: Path
) -> None:
    """F-13.1 through the CLI, as the attacker acts: the extension first, then the revocation."""
    cli("grant", "doctor", "--scopes", "lab", "--for", "1h", "--no-share-keys", wallet="patient")
    extension, revocation = tmp_path / "extension.json", tmp_path / "revocation.json"
    cli("grant", "doctor", "--scopes", "lab", "--for", "365d", "--no-share-keys", "--sign-only", "--out",
        str(extension), wallet="patient")
    cli("revoke", "doctor", "--sign-only", "--out", str(revocation), wallet="patient")
    cli("relay", str(extension), wallet="stranger")
    revoked = cli.json("relay", str(revocation), wallet="hospital")
    assert revoked["relayed"] == "revocation" and revoked["tx"] is not None
    replay = cli("relay", str(extension), wallet="stranger", expect=3)
    assert "error: relay signed grant failed" in replay.stderr
    again = cli("relay", str(revocation), wallet="hospital")
    assert again.stdout.startswith("already relayed")


def test_json_output_of_grant_revoke_relay_and_share_carries_the_key_share(
    cli: Cli, world: dict[str, str], lab_record: str, tmp_path: Path
) -> None:
    granted = cli.json("grant", "doctor", "--scopes", "lab", "--purpose", "TREAT", "--for", "1h", wallet="patient")
    assert granted["granted"]["purpose"] == "treatment" and granted["tx"]["hash"].startswith("0x")
    assert "keyShare" in granted
    revoked = cli.json("revoke", "doctor", wallet="patient")
    assert revoked["revoked"]["grantee"] == world["doctor"] and revoked["tx"]["block"] > 0
    signed_file = tmp_path / "signed.json"
    cli("grant", "doctor", "--scopes", "lab", "--sign-only", "--out", str(signed_file), wallet="patient")
    assert json.loads(signed_file.read_text()).get("keyShare") is None  # no keys ahead of the grant
    relayed = cli.json("relay", str(signed_file), wallet="hospital")
    assert relayed["relayed"] == "grant" and relayed["keyShare"] is None
    shared = cli.json("share", "doctor", "--scopes", "lab", wallet="patient")
    assert shared["keyShare"] is not None and shared["sharedRecords"] >= 1
    cli("revoke", "doctor", wallet="patient")


def test_unknown_purpose_is_a_usage_error_listing_the_known_ones(cli: Cli, world: dict[str, str]) -> None:
    refused = cli("grant", "doctor", "--scopes", "lab", "--purpose", "marketing", wallet="patient", expect=1)
    assert "unknown purpose of use 'marketing'" in refused.stderr and "research" in refused.stderr
