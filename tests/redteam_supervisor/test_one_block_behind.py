"""A validator one block behind the others while the head stands (sealers idle: a nudge is the
whole remedy, as in tests/network/test_supervisor.py). The validator behind is on the kept fork
and is peered; geth syncs it on its own, and a nudge needs no restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ehr_client.dev.geth import CliqueNetwork
from ehr_client.dev.rpc import rpc
from ehr_client.errors import ChainUnavailable
from tests.network._chain import stop_sealing, wait_until
from tests.network.conftest import start_network


@pytest.fixture
def network(tmp_path: Path) -> Iterator[CliqueNetwork]:
    with start_network(tmp_path / "net", validators=4) as started:
        yield started


def _lowest_head(network: CliqueNetwork) -> int:
    """The lowest validator head, -1 while one is restarting (its JSON-RPC is down for a moment)."""
    try:
        return min(int(rpc(node.rpc_url, "eth_blockNumber", timeout=2.0), 16) for node in network.validators)
    except ChainUnavailable:
        return -1


def test_a_validator_one_block_behind_is_not_restarted(network: CliqueNetwork) -> None:
    frozen = stop_sealing(network, timeout=60)
    assert frozen is not None
    head = frozen[0]
    behind = network.validators[3]
    rpc(behind.rpc_url, "debug_setHead", hex(head - 1))
    pids = {node.name: node.pid for node in network.validators}
    with network.supervised() as supervisor:
        wait_until(lambda: _lowest_head(network) >= head + 2, "every validator two blocks on", 90)
    restarted = [name for name, pid in pids.items() if network.nodes[name].pid != pid]
    print(f"nudges {supervisor.nudges}, settled {supervisor.settled}, restarted {restarted}")
    assert not restarted
