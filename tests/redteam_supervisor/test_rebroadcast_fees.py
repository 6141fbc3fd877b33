"""A transaction the validators refuse as underpriced, held by the RPC node that accepted it as local.

geth 1.13's pools refuse a remote transaction whose tip is below the miner's floor (`--miner.gasprice`,
1 gwei by default) but keep a local one (sent to them over JSON-RPC) whatever its tip. The RPC node
takes a 1-wei-tip transaction from its client; the validators refuse it over p2p, so it waits there.
The supervisor hands it to every validator with `eth_sendRawTransaction`, which makes it local there:
exempt from the validators' floor, mined, and its sender treated as local (journaled, never evicted,
no floor) from then on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hexbytes import HexBytes

from ehr_client.dev.clique_watch import STUCK_BLOCKS
from ehr_client.dev.geth import CliqueNetwork
from ehr_client.dev.rpc import rpc
from tests.network._chain import dev_account, send, web3
from tests.network.conftest import start_network


@pytest.fixture
def three_validators(tmp_path: Path) -> Iterator[CliqueNetwork]:
    with start_network(tmp_path / "net", validators=3, rpc_nodes=1) as network:
        yield network


def _receipt(network: CliqueNetwork, tx_hash: HexBytes) -> object:
    return rpc(network.validators[0].rpc_url, "eth_getTransactionReceipt", tx_hash.to_0x_hex())


def test_the_supervisor_does_not_override_the_validators_fee_floor(three_validators: CliqueNetwork) -> None:
    network = three_validators
    rpc_node = network.rpc_nodes[0]
    tx_hash = send(web3(rpc_node.rpc_url), dev_account(3), {"maxPriorityFeePerGas": 1})
    head = network.head(network.validators[0].name)
    network.wait_for_block(head + 8, name=network.validators[0].name, timeout=60)
    assert _receipt(network, tx_hash) is None  # the validators' floor holds without the supervisor
    assert int(rpc(rpc_node.rpc_url, "txpool_status")["pending"], 16) == 1
    with network.supervised() as supervisor:
        head = network.head(network.validators[0].name)
        network.wait_for_block(head + STUCK_BLOCKS + 4, name=network.validators[0].name, timeout=60)
    assert _receipt(network, tx_hash) is None, "mined below the validators' fee floor after the rebroadcast"
    assert supervisor.rebroadcasts == 0
