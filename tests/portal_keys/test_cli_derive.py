"""`ehr keys derive`: the CLI derives from its keystore wallet exactly the keys portal/src/keys.js
derives from the same wallet in a browser, keeps them in the keystore, publishes them, and the
client then reads records written to them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ehr_client.chain.client import ChainClient
from ehr_client.chain.deployment import Deployment
from ehr_client.chain.types import KeyType
from tests.cli.conftest import NETWORK, Cli
from tests.portal_keys.conftest import patient_key


def _deployment(home: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((home / "deployments" / f"{NETWORK}.json").read_text())
    return loaded


def _key_files(home: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((home / "keys" / "patient").iterdir())}


def test_cli_derives_the_keys_the_browser_derives_and_keeps_them(
    cli: Cli, world: dict[str, str], home: Path, keys_js: Any
) -> None:
    before = _key_files(home)
    printed = cli.json("keys", "derive", "--no-store", wallet="patient")
    assert _key_files(home) == before  # --no-store writes nothing
    browser = keys_js({"op": "wallet", "privateKey": patient_key(), "deployment": _deployment(home), "mode": "ethers"})
    assert (printed["x25519PublicKey"], printed["umbralPublicKey"]) == (
        browser["keys"]["x25519Public"], browser["keys"]["umbralPublic"])
    assert printed["keyRegistry"] == _deployment(home)["contracts"]["KeyRegistry"]
    assert browser["keys"]["x25519Secret"][2:] not in json.dumps(printed)

    stored = cli.json("keys", "derive", wallet="patient")
    x_version = stored["stored"]["x25519"]["version"]
    assert stored["stored"]["x25519"]["created"] and stored["stored"]["umbral"]["created"]
    again = cli.json("keys", "derive", wallet="patient")
    assert again["stored"] == {kind: {**facts, "created": False} for kind, facts in stored["stored"].items()}
    listed = {(k["kind"], k["version"]): k["publicKey"] for k in cli.json("keys", "list", wallet="patient")}
    assert listed[("x25519", x_version)] == printed["x25519PublicKey"]
    assert listed[("umbral", stored["stored"]["umbral"]["version"])] == printed["umbralPublicKey"]
    assert x_version > 1 and ("x25519", x_version - 1) in listed  # the old key stays for old records
    human = cli("keys", "derive", wallet="patient")
    assert printed["x25519PublicKey"] in human.stdout and browser["keys"]["umbralSecret"][2:] not in human.stdout + human.stderr


def test_published_derived_keys_are_on_chain_and_open_new_and_old_records(
    cli: Cli, world: dict[str, str], home: Path, keys_js: Any, observation: Path
) -> None:
    old_record = cli.json("record", "add", "patient", str(observation), wallet="lab")["recordId"]
    published = cli.json("keys", "derive", "--publish", wallet="patient")
    browser = keys_js({"op": "wallet", "privateKey": patient_key(), "deployment": _deployment(home), "mode": "ethers"})
    chain = ChainClient(cli.env["EHR_RPC_URL"], Deployment.load(home / "deployments" / f"{NETWORK}.json"))
    for kind, key_type, version in (("x25519", KeyType.X25519, published["published"]["x25519"]),
                                    ("umbral", KeyType.UMBRAL, published["published"]["umbral"])):
        on_chain_version, public = chain.call(chain.keys.functions.currentKey(world["patient"], key_type), action="read key")
        assert (int(on_chain_version), "0x" + bytes(public).hex()) == (version, browser["keys"][f"{kind}Public"])
    assert cli.json("keys", "derive", "--publish", wallet="patient")["published"] == published["published"]
    new_record = cli.json("record", "add", "patient", str(observation), wallet="lab")["recordId"]
    for record in (new_record, old_record):
        assert "2345-7" in cli("record", "get", record, wallet="patient").stdout


def test_publish_without_storing_is_refused_and_writes_nothing(cli: Cli, world: dict[str, str], home: Path) -> None:
    before = _key_files(home)
    refused = cli("keys", "derive", "--publish", "--no-store", wallet="patient", expect=1)
    assert "drop --no-store" in refused.stderr and _key_files(home) == before
