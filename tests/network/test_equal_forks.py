"""Two forks of equal weight on which every validator has "signed recently": geth 1.13 stands still.

A CI run started four validators one after another; two of them missed the first block and sealed
their own, and the network ended on two forks of two blocks each, of equal total difficulty. On
each fork its two sealers are barred from sealing the next block, the other two sit on the other
fork, and geth never switches between forks of equal weight without a new block. Here the same
forks are built on purpose, from genesis: each half seals its two blocks with the halves apart,
then the halves are joined again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ehr_client.dev.geth import CliqueNetwork, GethNode
from ehr_client.dev.rpc import rpc
from ehr_client.errors import ChainUnavailable
from tests.network._chain import cut_apart, heads, wait_until
from tests.network.conftest import FUNDED

PROGRESS = 60.0


def _relink(a: GethNode, b: GethNode, *, keep: bool) -> None:
    # Re-adding a peer that is still connected does nothing: wait until the link is gone.
    wait_until(lambda: cut_apart([a], [b]), f"{a.name} and {b.name} apart", PROGRESS)
    if keep:
        for node, other in ((a, b), (b, a)):
            rpc(node.rpc_url, "admin_addPeer", other.spec.enode)


def _seal_one(sealer: GethNode, other: GethNode, number: int) -> None:
    """`sealer` alone seals block `number`; then `other`, freshly linked so the handshake tells it the
    block's weight, syncs it (geth discards announced blocks until a node has synced once or mines)."""
    rpc(sealer.rpc_url, "miner_start")
    wait_until(lambda: int(rpc(sealer.rpc_url, "eth_blockNumber"), 16) >= number, f"{sealer.name} sealed {number}", PROGRESS)
    rpc(sealer.rpc_url, "miner_stop")
    _relink(sealer, other, keep=True)
    wait_until(lambda: int(rpc(other.rpc_url, "eth_blockNumber"), 16) >= number, f"{other.name} synced {number}", PROGRESS)


def _every_node_reached(network: CliqueNetwork, number: int) -> bool:
    try:
        return min(head for head, _ in heads(network).values()) >= number
    except ChainUnavailable:  # the supervisor restarts the validators it rewinds
        return False


@pytest.fixture
def equal_forks(tmp_path: Path) -> Iterator[CliqueNetwork]:
    """A fresh network of four validators and an RPC node, left on two forks of weight 3 at block 2."""
    network = CliqueNetwork.create(tmp_path / "net", validators=4, rpc_nodes=1, period=1,
                                   alloc={address: 10**24 for address in FUNDED})
    try:
        for node in network.nodes.values():
            node.start()  # geth only: nobody seals yet
        network.wait_for_peers(timeout=PROGRESS)
        signers = [s.lower() for s in network.signers()]
        by_address = {(node.spec.address or "").lower(): node for node in network.validators}
        first, second = by_address[signers[1 % 4]], by_address[signers[2 % 4]]  # in turn for blocks 1 and 2
        others = [node for node in network.validators if node not in (first, second)]
        # Half A: `first` seals block 1 in turn (2), others[0] block 2 out of turn (1).
        # Half B: others[1] seals block 1 out of turn (1), `second` block 2 in turn (2).
        half_a, half_b = [first, others[0], network.rpc_nodes[0]], [others[1], second]
        for a in half_a:
            for b in half_b:
                _relink(a, b, keep=False)
        wait_until(lambda: all(int(rpc(n.rpc_url, "net_peerCount"), 16) == len(half_a) - 1 for n in half_a), "half A apart", PROGRESS)
        _seal_one(first, others[0], 1)
        _seal_one(others[0], network.rpc_nodes[0], 2)
        _seal_one(others[1], second, 1)
        _seal_one(second, others[1], 2)
        for node in network.validators:
            rpc(node.rpc_url, "miner_start")
        network.reconnect_peers()
        network.wait_for_peers(timeout=PROGRESS)
        yield network
    finally:
        network.stop()


def test_equal_forks_where_everyone_signed_recently_are_settled_by_the_supervisor(equal_forks: CliqueNetwork) -> None:
    network = equal_forks
    tips = set(heads(network).values())
    assert {number for number, _ in tips} == {2} and len(tips) == 2  # two blocks 2
    weights = {rpc(node.rpc_url, "eth_getBlockByNumber", "latest", False)["totalDifficulty"]
               for node in network.validators}
    assert len(weights) == 1  # a block in turn (2) and one out of turn (1) on each fork

    time.sleep(8 * network.period)
    assert {number for number, _ in heads(network).values()} == {2}  # the fault holds: nobody seals

    with network.supervised() as supervisor:
        wait_until(lambda: _every_node_reached(network, 4), "the supervised chain moved on", PROGRESS)
    assert supervisor.settled >= 1
    network.wait_for_sync(timeout=PROGRESS)
    final = heads(network)
    lowest = min(number for number, _ in final.values())
    assert len({rpc(node.rpc_url, "eth_getBlockByNumber", hex(lowest), False)["hash"]
                for node in network.nodes.values()}) == 1  # one chain, every node on it
