"""The consortium chain run through `ehr network`, deployed with the Ape script, validators following
the Consortium's Validator role in both directions, and a record written with raw contract calls.

One 4-validator network for the module, started by `ehr network up` (detached, like an operator's)
and stopped by `ehr network down`. Tests run in file order on its one chain.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from hashlib import sha256
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from typer.testing import CliRunner
from web3 import Web3
from web3.logs import DISCARD

from ehr_client.chain.ids import record_id_of
from ehr_client.chain.abi import load_artifact
from ehr_client.cli import app
from ehr_client.dev.geth import CliqueNetwork
from ehr_client.dev.rpc import rpc
from ehr_client.dev.signers import current_signers, sync_signers
from ehr_client.errors import ChainStalled, ConfigError
from tests.constants import ACTION, DAY, ROLE
from tests.network._chain import dev_account, send, wait_receipt, web3
from tests.network.conftest import FUNDED

ROOT = Path(__file__).resolve().parents[2]
NETWORK = "ethereum-consortium"  # deployments/<this>.json, as scripts/deploy.py names ethereum:consortium
GOVERNORS = (dev_account(1), dev_account(2))
PATIENT = dev_account(5)
WAIT = 30.0


class Env:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {"EHR_HOME": str(home), "EHR_DEPLOYMENTS_DIR": str(home / "deployments"),
                    "EHR_NETWORK": NETWORK}
        self.runner = CliRunner()

    def ehr(self, *args: str, expect: int = 0) -> str:
        result = self.runner.invoke(app, list(args), env=self.env)
        assert result.exit_code == expect, f"ehr {' '.join(args)}: {result.exit_code}\n{result.stdout}\n{result.stderr}"
        return result.stdout + result.stderr

    @property
    def network(self) -> CliqueNetwork:
        return CliqueNetwork(self.home / "network")

    def contract(self, w3: Web3, name: str) -> Any:
        deployment = json.loads((self.home / "deployments" / f"{NETWORK}.json").read_text())
        return w3.eth.contract(address=deployment["contracts"][name], abi=load_artifact(name)["abi"])


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    env = Env(tmp_path_factory.mktemp("home"))
    funding = [arg for address in FUNDED for arg in ("--fund", address)]
    try:
        env.ehr("network", "up", "--validators", "4", "--period", "1", *funding)
        yield env
    finally:
        env.ehr("network", "down")


def _transact(w3: Web3, sender: LocalAccount, call: Any) -> Any:
    receipt = wait_receipt(w3, send(w3, sender, {"to": call.address, "value": 0, "gas": 500_000,
                                                 "data": call._encode_transaction_data()}), timeout=WAIT)
    assert receipt.status == 1
    return receipt


def _govern(env: Env, w3: Web3, action: str, target: str, value: int) -> None:
    """A 2-of-2 governor decision: propose, approve, execute."""
    consortium = env.contract(w3, "Consortium")
    receipt = _transact(w3, GOVERNORS[0], consortium.functions.propose(ACTION[action], target, value, DAY))
    proposal_id = consortium.events.ProposalCreated().process_receipt(receipt, errors=DISCARD)[0].args.proposalId
    _transact(w3, GOVERNORS[1], consortium.functions.approve(proposal_id))
    _transact(w3, GOVERNORS[0], consortium.functions.execute(proposal_id))


def test_up_status_and_ape_deploy(env: Env) -> None:
    status = json.loads(env.ehr("network", "status", "--json"))
    assert [n["running"] for n in status["nodes"]] == [True] * 4
    assert len(status["signers"]) == 4 and status["sealers"]
    out = env.home / "deployments" / f"{NETWORK}.json"
    deployed = subprocess.run(
        [str(Path(sys.executable).parent / "ape"), "run", "deploy", "--network",
         f"ethereum:consortium:{env.network.rpc_url()}", "--account", "TEST::0", "--out", str(out),
         "--governor", GOVERNORS[0].address, "--governor", GOVERNORS[1].address, "--threshold", "2",
         "--confirmations", "3"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    written = json.loads(out.read_text())
    assert written["chainId"] == 31415 and written["network"] == "ethereum:consortium"
    w3 = web3(env.network.rpc_url())
    assert all(w3.eth.get_code(address) for address in written["contracts"].values())
    settled = written["registryBlock"]
    assert w3.eth.get_block(settled["number"])["hash"].to_0x_hex() == settled["hash"]  # the block that stayed
    assert w3.eth.block_number >= settled["number"] + 3


def test_sync_refuses_an_empty_validator_set_and_changes_nothing(env: Env) -> None:
    network = env.network
    before = current_signers(network.rpc_url())
    with pytest.raises(ConfigError, match="no active validator"):
        sync_signers([v.rpc_url for v in network.validators], [], timeout=5)
    assert "no active validator" in env.ehr("network", "sync-validators", expect=1)  # none admitted yet
    assert current_signers(network.rpc_url()) == before and len(before) == 4


def test_admitted_validators_match_the_signer_set(env: Env) -> None:
    network = env.network
    w3 = web3(network.rpc_url())
    for node in network.validators:
        assert node.spec.address is not None
        _govern(env, w3, "admit", node.spec.address, ROLE["validator"])
    output = env.ehr("network", "sync-validators", "--timeout", "60")
    assert "voted" not in output
    assert current_signers(network.rpc_url()) == {v.spec.address for v in network.validators}


def test_sync_from_too_few_own_nodes_times_out_and_changes_nothing(env: Env) -> None:
    network = env.network
    before = current_signers(network.rpc_url())
    target = network.node("validator-4").spec.address
    one_node = network.node("validator-1").rpc_url
    with pytest.raises(ChainStalled, match="more than half"):  # 1 vote of 4 signers
        sync_signers([one_node], before - {target}, timeout=6)
    assert current_signers(network.rpc_url()) == before
    rpc(one_node, "clique_discard", target)  # an operator who gives up withdraws the vote
    assert rpc(one_node, "clique_proposals") == {}


def test_suspended_validator_is_voted_out_and_seals_no_more(env: Env) -> None:
    network = env.network
    w3 = web3(network.rpc_url())
    removed = network.node("validator-4")
    assert removed.spec.address is not None
    _transact(w3, GOVERNORS[0], env.contract(w3, "Consortium").functions.suspend(removed.spec.address))

    assert f"voted out {removed.spec.address}" in env.ehr("network", "sync-validators", "--timeout", "60")
    assert removed.spec.address not in current_signers(network.rpc_url())
    start = network.head()
    head = network.wait_for_block(start + 8, timeout=WAIT)
    assert removed.spec.address.lower() not in {network.sealer(n) for n in range(start + 1, head + 1)}
    assert removed.running  # still following the chain, but no longer allowed to seal on it
    network.wait_for_block(head, name="validator-4", timeout=WAIT)
    assert web3(removed.rpc_url).eth.get_block(head)["hash"] == w3.eth.get_block(head)["hash"]
    assert "unauthorized signer" in removed.log_path.read_text()


def test_reinstated_validator_is_voted_back_in_and_seals(env: Env) -> None:
    network = env.network
    w3 = web3(network.rpc_url())
    returning = network.node("validator-4")
    assert returning.spec.address is not None
    _govern(env, w3, "reinstate", returning.spec.address, 0)

    assert f"voted in {returning.spec.address}" in env.ehr("network", "sync-validators", "--timeout", "60")
    start = network.head()
    head = network.wait_for_block(start + 8, timeout=WAIT)
    assert returning.spec.address.lower() in {network.sealer(n) for n in range(start + 1, head + 1)}


def test_patient_registers_and_anchors_a_record_by_raw_call(env: Env) -> None:
    w3 = web3(env.network.rpc_url())
    registry = env.contract(w3, "RecordRegistry")
    _transact(w3, PATIENT, registry.functions.registerPatient())
    salt, content_hash = secrets.token_bytes(32), sha256(b"ciphertext stand-in").digest()
    record_id = record_id_of(PATIENT.address, salt)  # ids are derived from the author and its salt
    cid = bytes.fromhex("01551220") + content_hash  # CIDv1, raw codec, sha2-256
    receipt = _transact(w3, PATIENT, registry.functions.addRecord(salt, PATIENT.address, content_hash, 1, cid))
    added = registry.events.RecordAdded().process_receipt(receipt, errors=DISCARD)[0].args
    assert (added.recordId, added.patient, added.contentHash) == (record_id, PATIENT.address, content_hash)
    assert registry.functions.recordStatus(record_id).call() == 1  # Active
    assert registry.functions.isPatient(PATIENT.address).call()


def test_up_again_reuses_the_running_chain_and_refuses_a_different_shape(env: Env) -> None:
    assert "reusing the chain" in env.ehr("network", "up")
    refused = env.ehr("network", "up", "--validators", "3", expect=1)
    assert "has 4 validators" in refused and "--fresh" in refused
    assert "network is running" in env.ehr("network", "up", "--fresh", expect=1)


def test_down_and_up_keep_the_chain_and_its_contracts(env: Env) -> None:
    network = env.network
    w3 = web3(network.rpc_url())
    head = w3.eth.block_number
    kept = {n: w3.eth.get_block(n)["hash"] for n in (1, head // 2, head)}
    env.ehr("network", "down")
    assert not any(node.running for node in env.network.nodes.values())
    env.ehr("network", "up")
    w3 = web3(env.network.rpc_url())
    assert {n: w3.eth.get_block(n)["hash"] for n in kept} == kept
    assert env.contract(w3, "RecordRegistry").functions.isPatient(PATIENT.address).call()
    env.network.wait_for_block(head + 3, timeout=WAIT)
