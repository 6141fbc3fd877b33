"""A partition into two halves of two validators, under supervision, that heals.

Each half seals at most two blocks on its own fork and stands ("signed recently"); the supervisor
cannot settle while the halves are apart (nobody is peered with the other fork). The links come
back (`admin_addPeer` at both ends, as an operator would); the chain must move on, one chain.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ehr_client.dev.geth import CliqueNetwork
from ehr_client.dev.rpc import rpc
from tests.network._chain import cut_apart, heads, wait_until
from tests.network.conftest import start_network
from tests.network.test_equal_forks import _every_node_reached


@pytest.fixture
def network(tmp_path: Path) -> Iterator[CliqueNetwork]:
    with start_network(tmp_path / "net", validators=4, rpc_nodes=1) as started:
        yield started


def test_a_healed_partition_moves_on_under_supervision(network: CliqueNetwork) -> None:
    half_a = network.validators[:2] + network.rpc_nodes
    half_b = network.validators[2:]
    with network.supervised() as supervisor:
        wait_until(lambda: cut_apart(half_a, half_b), "the halves apart", 60)
        start = max(number for number, _ in heads(network).values())
        wait_until(lambda: supervisor.nudges >= 2, "the halves stood still", 90)
        stood = heads(network)
        for a in half_a:
            for b in half_b:
                rpc(a.rpc_url, "admin_addPeer", b.spec.enode)
                rpc(b.rpc_url, "admin_addPeer", a.spec.enode)
        top = max(number for number, _ in stood.values())
        wait_until(lambda: _every_node_reached(network, top + 3), "every node 3 blocks past the healed halves", 150)
    print(f"cut at {start}; stood {stood}; nudges {supervisor.nudges}, settled {supervisor.settled}")
    network.wait_for_sync(timeout=60)
    lowest = min(number for number, _ in heads(network).values())
    assert len({rpc(n.rpc_url, "eth_getBlockByNumber", hex(lowest), False)["hash"] for n in network.nodes.values()}) == 1
