"""A healthy chain is left alone: one validator of four stopped (three seal, every fourth block out
of turn after Clique's wiggle), the supervisor must neither nudge, settle nor restart anyone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ehr_client.dev.geth import CliqueNetwork
from tests.network._chain import wait_until
from tests.network.conftest import start_network

BLOCKS = 60


@pytest.fixture
def network(tmp_path: Path) -> Iterator[CliqueNetwork]:
    with start_network(tmp_path / "net", validators=4, rpc_nodes=1) as started:
        yield started


def test_a_chain_with_one_validator_down_gets_no_remedy(network: CliqueNetwork) -> None:
    network.stop([network.validators[3].name])
    pids = {node.name: node.pid for node in network.nodes.values() if node.running}
    start = network.head()
    with network.supervised() as supervisor:
        wait_until(lambda: network.head() >= start + BLOCKS, f"{BLOCKS} blocks sealed", 4 * BLOCKS)
    print(f"nudges {supervisor.nudges}, settled {supervisor.settled}")
    assert (supervisor.nudges, supervisor.settled) == (0, 0)
    assert {node.name: node.pid for node in network.nodes.values() if node.running} == pids
