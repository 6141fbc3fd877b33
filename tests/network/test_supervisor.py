"""The supervisor unblocks a Clique network that stands still in the two ways geth 1.13 can.

Each test first shows the fault holding without supervision, then that the supervisor clears it.
The waits here only read the chain (no nudging, unlike `CliqueNetwork.wait_for_block`), so
whatever moves the chain is the supervisor.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable

from hexbytes import HexBytes

from ehr_client.dev.geth import CliqueNetwork, GethNode
from ehr_client.dev.rpc import rpc
from ehr_client.errors import ChainUnavailable
from tests.network._chain import cut_apart, dev_account, send, stop_sealing, wait_until, web3


def _highest_head(nodes: Iterable[GethNode]) -> int:
    """The highest head among `nodes` that answer (-1 if none does): a supervisor that settles equal
    forks restarts the validators it rewinds, and a restarting node's JSON-RPC is down for a moment."""
    answered = []
    for node in nodes:
        if node.running:
            try:
                answered.append(int(rpc(node.rpc_url, "eth_blockNumber", timeout=2.0), 16))
            except ChainUnavailable:
                continue
    return max(answered, default=-1)


def _receipt(url: str, tx_hash: HexBytes) -> object:
    return rpc(url, "eth_getTransactionReceipt", tx_hash.to_0x_hex())


def test_validators_that_stopped_sealing_are_started_again(network: CliqueNetwork) -> None:
    try:
        stop_sealing(network, timeout=60)
        head = _highest_head(network.validators)
        time.sleep(4 * network.period)
        assert _highest_head(network.validators) == head  # the fault holds: nobody seals a round
        with network.supervised() as supervisor:
            wait_until(lambda: _highest_head(network.validators) >= head + 2, "the supervised chain moved on", 60)
        assert supervisor.nudges >= 1
    finally:
        for validator in network.validators:
            rpc(validator.rpc_url, "miner_start")


def test_a_transaction_only_one_node_holds_is_mined_once_peers_reconnect(network: CliqueNetwork) -> None:
    rpc_node = network.rpc_nodes[0]
    try:
        wait_until(lambda: cut_apart([rpc_node], network.validators), "the RPC node cut off from the validators", 30)

        tx_hash = send(web3(rpc_node.rpc_url), dev_account(4), {})
        head = _highest_head(network.validators)
        wait_until(lambda: _highest_head(network.validators) >= head + 3, "the validators sealed three blocks", 60)
        validator_url = network.validators[0].rpc_url
        assert _receipt(validator_url, tx_hash) is None  # the fault holds: blocks go by without it
        assert int(rpc(rpc_node.rpc_url, "txpool_status")["pending"], 16) == 1

        with network.supervised() as supervisor:
            wait_until(lambda: _receipt(validator_url, tx_hash) is not None, "the transaction was mined", 90)
        receipt = _receipt(validator_url, tx_hash)
        assert isinstance(receipt, dict) and int(receipt["status"], 16) == 1
        assert supervisor.reconnects >= 1
    finally:
        network.reconnect_peers()


def _hang_one_of_four_with_sealing_stopped(network: CliqueNetwork) -> tuple[GethNode, list[GethNode], int]:
    """Freeze the chain, then SIGSTOP validator-1 (first in the network's order): it still runs but
    answers nothing. The other three may seal on (Clique needs more than half); return the hung
    node, the others, and their head."""
    stop_sealing(network, timeout=60)
    hung = network.validators[0]
    assert hung.pid is not None
    os.kill(hung.pid, signal.SIGSTOP)
    live = [node for node in network.validators if node is not hung]
    return hung, live, _highest_head(live)


def _resume(network: CliqueNetwork, hung: GethNode) -> None:
    if hung.pid is not None:
        os.kill(hung.pid, signal.SIGCONT)
    for validator in network.validators:
        rpc(validator.rpc_url, "miner_start")


def test_a_hung_validator_does_not_keep_the_supervisor_from_starting_the_others(network: CliqueNetwork) -> None:
    hung, live, head = _hang_one_of_four_with_sealing_stopped(network)
    try:
        time.sleep(4 * network.period)
        assert _highest_head(live) == head  # the fault holds: nobody seals a round
        with network.supervised():
            wait_until(lambda: _highest_head(live) >= head + 2, "the three live validators sealed again", 60)
    finally:
        _resume(network, hung)


def test_waiting_for_a_block_starts_the_live_sealers_while_one_validator_hangs(network: CliqueNetwork) -> None:
    """`wait_for_block` nudges through the same `StallWatch` as the supervisor (what `ehr network up`
    relies on, with no supervisor): here it is what must move the chain."""
    hung, live, head = _hang_one_of_four_with_sealing_stopped(network)
    try:
        network.wait_for_block(head + 2, name=live[0].name, timeout=60)
    finally:
        _resume(network, hung)

