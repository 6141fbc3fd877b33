"""The supervisor unblocks a Clique network that stands still in the two ways geth 1.13 can.

Each test first shows the fault holding without supervision, then that the supervisor clears it.
The waits here only read the chain (no nudging, unlike `CliqueNetwork.wait_for_block`), so
whatever moves the chain is the supervisor.
"""

from __future__ import annotations

import time

from hexbytes import HexBytes

from ehr_client.dev.geth import CliqueNetwork
from ehr_client.dev.rpc import rpc
from tests.network._chain import dev_account, send, stop_sealing, wait_until, web3


def _highest_head(network: CliqueNetwork) -> int:
    return max(int(rpc(node.rpc_url, "eth_blockNumber"), 16) for node in network.validators if node.running)


def _receipt(url: str, tx_hash: HexBytes) -> object:
    return rpc(url, "eth_getTransactionReceipt", tx_hash.to_0x_hex())


def test_validators_that_stopped_sealing_are_started_again(network: CliqueNetwork) -> None:
    try:
        stop_sealing(network, timeout=60)
        head = _highest_head(network)
        time.sleep(4 * network.period)
        assert _highest_head(network) == head  # the fault holds: nobody seals a round
        with network.supervised() as supervisor:
            wait_until(lambda: _highest_head(network) >= head + 2, "the supervised chain moved on", 60)
        assert supervisor.nudges >= 1
    finally:
        for validator in network.validators:
            rpc(validator.rpc_url, "miner_start")


def test_a_transaction_only_one_node_holds_is_mined_once_peers_reconnect(network: CliqueNetwork) -> None:
    rpc_node = network.rpc_nodes[0]
    try:
        for validator in network.validators:  # partition the RPC node: both ends forget the link
            rpc(rpc_node.rpc_url, "admin_removePeer", validator.spec.enode)
            rpc(validator.rpc_url, "admin_removePeer", rpc_node.spec.enode)
        wait_until(lambda: int(rpc(rpc_node.rpc_url, "net_peerCount"), 16) == 0, "the RPC node lost its peers", 30)

        tx_hash = send(web3(rpc_node.rpc_url), dev_account(4), {})
        head = _highest_head(network)
        wait_until(lambda: _highest_head(network) >= head + 3, "the validators sealed three blocks", 60)
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
