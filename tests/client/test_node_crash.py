"""`kill -9` of the local node: what the node had not yet dumped is lost, and `recover` anchors the
acknowledged writes again under the same ids, so nothing acknowledged is lost in the end."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from eth_account import Account

from ehr_client.batch import BatchItem, BatchWriter
from ehr_client.batch.recover import recover
from ehr_client.chain.client import ChainClient, Deployment, deploy_suite
from ehr_client.client import EHRClient, Identity
from ehr_client.crypto import generate_x25519_keypair
from ehr_client.dev.node import DEV_MNEMONIC, AnvilNode
from ehr_client.records import canonicalize
from ehr_client.storage import LocalStore


def _dev(index: int) -> Identity:
    Account.enable_unaudited_hdwallet_features()
    account = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return Identity.from_private_keys(account.key, {1: generate_x25519_keypair().private_key})


def kill_9(node: AnvilNode) -> None:
    """No clean exit: what Anvil had not dumped (up to its last second) is lost."""
    assert node.pid is not None
    os.killpg(node.pid, signal.SIGKILL)


def client_after_restart(node: AnvilNode, deployment: Deployment, identity: Identity, tmp_path: Path) -> EHRClient:
    """The client of `identity` (store and state under `tmp_path`) on a node restarted from its state."""
    return EHRClient(ChainClient(node.rpc_url, deployment, timeout=10), LocalStore(tmp_path / "store"), identity,
                     state_dir=tmp_path / "state")


def _obs(n: int) -> dict[str, object]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": f"weight {n}"},
            "valueQuantity": {"value": 70 + n, "unit": "kg"}}


def test_writes_acknowledged_before_a_kill_9_are_all_there_after_recover(tmp_path: Path) -> None:
    state = tmp_path / "chain-state.json"
    node = AnvilNode(log_path=tmp_path / "anvil.log", state_path=state).start()
    try:
        gov, me = _dev(0), _dev(1)
        deployment = deploy_suite(node.rpc_url, gov.account, network="crash", governors=[gov.address], threshold=1)
        patient = EHRClient(ChainClient(node.rpc_url, deployment, timeout=10), LocalStore(tmp_path / "store"), me,
                            state_dir=tmp_path / "state")
        patient.register_patient()
        patient.publish_key()
        time.sleep(2.5)  # the deployment and registration are in a dump
        written = [patient.add_record(patient.address, _obs(i)).record_id for i in range(3)]
        written += BatchWriter(patient).write([BatchItem(patient.address, _obs(10 + i)) for i in range(3)]).record_ids
        kill_9(node)
    finally:
        node.stop()

    restarted = AnvilNode(log_path=tmp_path / "anvil2.log", state_path=state).start()
    try:
        patient = client_after_restart(restarted, deployment, me, tmp_path)
        outcomes = recover(patient)
        print("after kill -9:", sorted(r.outcome for r in outcomes))
        assert {r.outcome for r in outcomes} <= {"on chain", "re-anchored"}, outcomes
        listed = [r.record_id for r in patient.list_records(patient.address)]
        assert sorted(listed) == sorted(written) and len(listed) == len(written)
        assert patient.read_record(written[-1]).data == canonicalize(_obs(12))
    finally:
        restarted.stop()
