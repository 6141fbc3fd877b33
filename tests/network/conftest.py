"""A real geth Clique network per module (period 1 s), on loopback, stopped when the module ends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ehr_client.dev.geth import CliqueNetwork
from tests.network._chain import dev_account

FUNDED = [dev_account(i).address for i in range(6)]


def start_network(root: Path, *, validators: int, rpc_nodes: int = 0, **options: object) -> CliqueNetwork:
    network = CliqueNetwork.create(root, validators=validators, rpc_nodes=rpc_nodes, period=1,
                                   alloc={address: 10**24 for address in FUNDED}, **options)  # type: ignore[arg-type]
    try:
        network.start()
        network.wait_for_peers(timeout=60)
        network.wait_for_block(2, timeout=60)
    except BaseException:
        network.stop()
        raise
    return network


@pytest.fixture(scope="module")
def four_validators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliqueNetwork]:
    """4 validators and 1 RPC node; the tests talk to the RPC node."""
    with start_network(tmp_path_factory.mktemp("clique") / "net", validators=4, rpc_nodes=1) as network:
        yield network


@pytest.fixture
def network(four_validators: CliqueNetwork) -> CliqueNetwork:
    """The module's network with every node running and peered, whatever the last test stopped."""
    four_validators.start()
    four_validators.wait_for_peers(timeout=60)
    four_validators.wait_for_sync(timeout=60)
    return four_validators


@pytest.fixture
def supervised_network(network: CliqueNetwork) -> Iterator[CliqueNetwork]:
    """`network` with a `Supervisor` running, as the demo runs it: for tests that only use the chain."""
    with network.supervised():
        yield network
