"""A hostile author (any member some patient granted a scope: here the hospital) anchors a batch whose
manifest pointer is the CID of another author's record package, public in its RecordAdded event.
`ehr storage gc` of the store holding that package reads it as the batch's "manifest", and stops
(exit 4) for good, though nothing the store's owner anchored depends on it and nothing is damaged."""

from __future__ import annotations

import json
import os
from pathlib import Path

from web3 import Web3

from ehr_client.dev.node import AnvilNode
from ehr_client.chain.abi import load_artifact
from ehr_client.records.scopes import Scope
from ehr_client.storage.cid import cid_to_bytes
from tests.cli.conftest import CAST, Cli, anvil, cli, dev_key, home, observation, world  # noqa: F401  (fixtures)


def store_files(home: Path) -> set[Path]:
    root = home / "store"
    return {p for p in root.rglob("b*") if p.is_file() and "packs" not in p.parts}


def anchor_foreign_batch(rpc_url: str, home: Path, patient: str, manifest_cid: str) -> None:
    """The hospital anchors a batch straight on the registry, pointing its manifest at `manifest_cid`."""
    deployment = json.loads((home / "deployments" / "cli-test.json").read_text())
    w3 = Web3(Web3.HTTPProvider(rpc_url))
    account = w3.eth.account.from_key(dev_key(CAST.index("hospital")))
    registry = w3.eth.contract(address=deployment["contracts"]["RecordRegistry"],
                               abi=load_artifact("RecordRegistry")["abi"])
    call = registry.functions.anchorBatch(os.urandom(32), patient, int(Scope.CONDITIONS), os.urandom(32), 1,
                                          os.urandom(32), cid_to_bytes(manifest_cid))
    tx = call.build_transaction({"from": account.address, "nonce": w3.eth.get_transaction_count(account.address),
                                 "gas": 500_000, "chainId": w3.eth.chain_id})
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction))
    assert receipt["status"] == 1


def test_a_foreign_pointer_at_an_intact_package_stops_gc(cli: Cli, home: Path, world: dict[str, str], anvil: AnvilNode,
                                                        observation: Path) -> None:
    before = store_files(home)
    cli("record", "add", "patient", str(observation), wallet="lab")
    (package,) = store_files(home) - before
    assert cli("storage", "gc", wallet="lab", expect=None).exit_code == 0

    anchor_foreign_batch(anvil.rpc_url, home, world["patient"], package.name)

    stopped = cli("storage", "gc", wallet="lab", expect=None)
    assert stopped.exit_code == 0, f"gc stopped ({stopped.exit_code}): {stopped.stderr or stopped.stdout}"
