"""A chain that was reset, a node that hangs, a node that is gone: typed errors within the deadline,
never an empty answer and never web3's untyped errors (issue 14, items 2, 4 and 6)."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from web3 import HTTPProvider, Web3

from ehr_client.chain.client import ChainClient, deploy_suite
from ehr_client.client import EHRClient, Identity
from ehr_client.crypto import generate_x25519_keypair
from ehr_client.dev.node import DEV_MNEMONIC, AnvilNode
from ehr_client.errors import ChainMismatch, ChainStalled, ChainUnavailable
from ehr_client.storage import LocalStore
from tests.hang import hang


def _dev_identity(index: int) -> Identity:
    Account.enable_unaudited_hdwallet_features()
    account = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return Identity.from_private_keys(account.key, {1: generate_x25519_keypair().private_key})


@pytest.fixture
def own_anvil(tmp_path: Path) -> Iterator[AnvilNode]:
    node = AnvilNode(log_path=tmp_path / "anvil.log").start()
    try:
        yield node
    finally:
        if node.pid is not None:
            os.killpg(node.pid, signal.SIGCONT)
        node.stop()


class _SilentNode:
    """A loopback port that accepts connections and never answers: a hung node."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_a_reset_chain_is_refused_by_name_and_never_reads_as_empty(own_anvil: AnvilNode, tmp_path: Path) -> None:
    gov, patient_id = _dev_identity(0), _dev_identity(1)
    deployment = deploy_suite(own_anvil.rpc_url, gov.account, network="reset", governors=[gov.address], threshold=1)
    chain = ChainClient(own_anvil.rpc_url, deployment, timeout=5)
    patient = EHRClient(chain, LocalStore(tmp_path / "store"), patient_id, state_dir=tmp_path / "state")
    patient.register_patient()
    patient.publish_key()
    written = patient.add_record(patient.address, {"resourceType": "Observation", "status": "final",
                                                   "code": {"text": "glucose"}})
    assert [r.record_id for r in patient.list_records(patient.address)] == [written.record_id]

    # the node dies without saving and comes back empty: a chain reset
    os.killpg(own_anvil.pid, signal.SIGKILL)
    own_anvil.stop()
    restarted = AnvilNode(log_path=tmp_path / "anvil2.log")
    restarted.start()
    try:
        url = restarted.rpc_url
        with pytest.raises(ChainMismatch, match="no contract code .* reset or replaced"):
            ChainClient(url, deployment, timeout=5)
        # a long-lived client notices as well: on its next listing, read or write
        chain.provider.endpoint_uri = url  # type: ignore[assignment]
        chain._checked_at = 0.0
        with pytest.raises(ChainMismatch):
            patient.list_records(patient.address)
        with pytest.raises(ChainMismatch):
            patient.read_record(written.record_id)
        with pytest.raises(ChainMismatch):
            patient.add_record(patient.address, {"resourceType": "Observation", "status": "final",
                                                 "code": {"text": "again"}})
        # and a redeployment at the same addresses is told apart by the deploy block's hash (Anvil's
        # timestamps are whole seconds: the same transactions in the same second would make the same
        # blocks, a chain indistinguishable up to there; `recover` covers what came after)
        time.sleep(1.1)
        again = deploy_suite(url, gov.account, network="reset", governors=[gov.address], threshold=1)
        assert again.contracts == deployment.contracts
        with pytest.raises(ChainMismatch, match="another block"):
            ChainClient(url, deployment, timeout=5)
    finally:
        restarted.stop()


def test_a_hung_node_gives_a_typed_error_within_the_deadline(own_anvil: AnvilNode, tmp_path: Path) -> None:
    gov = _dev_identity(0)
    deployment = deploy_suite(own_anvil.rpc_url, gov.account, network="hung", governors=[gov.address], threshold=1)
    chain = ChainClient(own_anvil.rpc_url, deployment, timeout=3)
    hang(own_anvil.pid, group=True)
    started = time.monotonic()
    with pytest.raises(ChainUnavailable, match="within 3s"):
        chain.head()
    elapsed = time.monotonic() - started
    assert elapsed < 3 + 1.5, f"a hung node held the call for {elapsed:.1f}s, past the 3 s deadline"


def test_a_hung_rpc_node_is_left_for_the_next_one(rpc_url: str, suite: ChainClient) -> None:
    silent = _SilentNode()
    try:
        chain = ChainClient([silent.url, rpc_url], suite.deployment, timeout=10, request_timeout=1)
        assert chain.rpc_url == rpc_url  # the constructor's own check already failed over
        assert chain.head() > 0
        down = ChainClient(f"{silent.url},{rpc_url}", suite.deployment, timeout=10, request_timeout=1)
        assert down.chain_id == suite.chain_id
    finally:
        silent.close()


def test_no_node_at_all_is_chain_unavailable_naming_every_url(suite: ChainClient) -> None:
    with socket.socket() as a, socket.socket() as b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        urls = [f"http://127.0.0.1:{s.getsockname()[1]}" for s in (a, b)]
    with pytest.raises(ChainUnavailable) as caught:
        ChainClient(urls, suite.deployment, timeout=2)
    assert all(url in str(caught.value) for url in urls)


def test_a_deployment_the_chain_does_not_mine_is_a_typed_stall_and_sends_nothing_more(own_anvil: AnvilNode) -> None:
    gov = _dev_identity(0)
    w3 = Web3(HTTPProvider(own_anvil.rpc_url))
    w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]  # blocks stop coming
    with pytest.raises(ChainStalled, match="deploying Consortium: .* was not mined within 2s") as raised:
        deploy_suite(own_anvil.rpc_url, gov.account, network="stalled", governors=[gov.address], threshold=1,
                     timeout=2)
    assert "deploy again" in str(raised.value)
    assert w3.eth.get_transaction_count(gov.address, "pending") == 1  # only the first contract was sent
    assert w3.eth.get_transaction_count(gov.address, "latest") == 0  # and nothing was mined
