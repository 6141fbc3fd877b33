"""Validators stop, return and restart under a real 4-validator Clique network (period 1 s)."""

from __future__ import annotations

import subprocess

import pytest

from ehr_client.dev.geth import CliqueNetwork
from ehr_client.errors import ChainStalled
from tests.network._chain import dev_account, send, wait_receipt, web3

# Generous bounds: they only decide when a test gives up, never what it asserts.
PROGRESS = 60.0
STALL = 8.0


def test_blocks_advance_and_every_validator_seals(network: CliqueNetwork) -> None:
    start = network.head()
    network.wait_for_block(start + 8, timeout=PROGRESS)
    sealers = {network.sealer(n) for n in range(start + 1, start + 9)}
    validators = {v.spec.address.lower() for v in network.validators if v.spec.address}
    assert sealers <= validators
    assert len(sealers) >= 3  # Clique lets no signer seal twice within floor(4/2)+1 blocks
    assert {node.name: node.peers for node in network.status().nodes} == {name: 4 for name in network.nodes}


def test_blocks_and_writes_continue_with_one_validator_stopped(network: CliqueNetwork) -> None:
    network.stop(["validator-2"])
    w3 = web3(network.rpc_url())
    receipt = wait_receipt(w3, send(w3, dev_account(1), {}), timeout=PROGRESS)
    assert receipt.status == 1
    head = network.wait_for_block(network.head() + 4, timeout=PROGRESS)
    stopped = network.node("validator-2").spec.address
    assert stopped is not None
    assert stopped.lower() not in {network.sealer(n) for n in range(head - 3, head + 1)}


def test_two_of_four_stopped_stalls_writes_until_one_returns(network: CliqueNetwork) -> None:
    w3 = web3(network.rpc_url())
    sender = dev_account(2)
    nonce = w3.eth.get_transaction_count(sender.address)
    network.stop(["validator-3", "validator-4"])
    # The two left may seal up to two more blocks (on any fork) before both count as "signed recently".
    top = max(network.head(node.name) for node in network.nodes.values() if node.running)
    with pytest.raises(ChainStalled):
        network.wait_for_block(top + 4, timeout=STALL)

    tx_hash = send(w3, sender, {})
    with pytest.raises(ChainStalled, match="not included"):
        wait_receipt(w3, tx_hash, timeout=STALL)
    assert w3.eth.get_transaction(tx_hash)["blockNumber"] is None  # waiting in the pool, not half-applied
    assert w3.eth.get_transaction_count(sender.address) == nonce

    network.start(["validator-3"])
    network.wait_for_block(top + 3, timeout=PROGRESS)
    receipt = wait_receipt(w3, tx_hash, timeout=PROGRESS)
    assert receipt.status == 1
    assert w3.eth.get_transaction_count(sender.address) == nonce + 1  # included once
    network.wait_for_block(receipt.blockNumber + 3, timeout=PROGRESS)


def test_restarted_validator_catches_up_from_its_data(network: CliqueNetwork) -> None:
    node = network.node("validator-4")
    before = network.head("validator-4")
    network.stop(["validator-4"])
    target = network.wait_for_block(network.head() + 6, timeout=PROGRESS)
    network.start(["validator-4"])
    assert network.head("validator-4") >= before  # its own blocks came back from disk
    network.wait_for_block(target, name="validator-4", timeout=PROGRESS)
    ours = web3(node.rpc_url).eth.get_block(target)["hash"]
    theirs = web3(network.rpc_url()).eth.get_block(target)["hash"]
    assert ours == theirs


def test_every_node_listens_on_loopback_only(network: CliqueNetwork) -> None:
    pids = {node.pid for node in network.nodes.values()}
    listing = subprocess.run(["ss", "-H", "-tulpn"], capture_output=True, text=True, timeout=10, check=True).stdout
    sockets = [line.split() for line in listing.splitlines() if any(f"pid={pid}," in line for pid in pids)]
    assert len(sockets) == 3 * len(pids)  # p2p, JSON-RPC, engine API; no UDP discovery
    assert all(fields[0] == "tcp" and fields[4].startswith("127.0.0.1:") for fields in sockets)


def test_reconnected_peers_handshake_again_and_the_chain_moves_on(network: CliqueNetwork) -> None:
    start = network.head()
    network.reconnect_peers()
    network.wait_for_peers(timeout=PROGRESS)
    network.wait_for_block(start + 3, timeout=PROGRESS)
    assert network.wait_for_sync(timeout=PROGRESS) >= start + 2
