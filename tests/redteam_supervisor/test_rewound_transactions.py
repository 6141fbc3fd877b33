"""Transactions mined only on the fork `settle_forks` rewinds away.

Two halves of four validators each seal two blocks apart from each other (forks of equal weight,
everyone "signed recently": the stall the supervisor settles), each half mining one transaction
that has two confirmations there. Then every validator restarts (as after a deploy, a crash or an
earlier settle). The supervisor keeps one fork and rewinds the other half with `debug_setHead`;
geth's own reorganisation would put the dropped blocks' transactions back in the pool, a setHead
does not, and a restarted node's journal no longer holds a transaction that was mined.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hexbytes import HexBytes

from ehr_client.dev.geth import CliqueNetwork, GethNode
from ehr_client.dev.rpc import rpc
from tests.network._chain import dev_account, heads, send, wait_until, web3
from tests.network.conftest import FUNDED
from tests.network.test_equal_forks import PROGRESS, _every_node_reached, _relink, _seal_one


def _confirmations(node: GethNode, tx_hash: HexBytes) -> int:
    receipt = rpc(node.rpc_url, "eth_getTransactionReceipt", tx_hash.to_0x_hex())
    if receipt is None:
        return 0
    return int(rpc(node.rpc_url, "eth_blockNumber"), 16) - int(receipt["blockNumber"], 16) + 1


@pytest.fixture
def forks_with_a_transaction_each(tmp_path: Path, request: pytest.FixtureRequest
                                  ) -> Iterator[tuple[CliqueNetwork, dict[str, HexBytes]]]:
    """`request.param`: whether every validator restarts once its half's blocks are sealed."""
    network = CliqueNetwork.create(tmp_path / "net", validators=4, period=1,
                                   alloc={address: 10**24 for address in FUNDED})
    try:
        for node in network.nodes.values():
            node.start()
        network.wait_for_peers(timeout=PROGRESS)
        signers = [s.lower() for s in network.signers()]
        by_address = {(node.spec.address or "").lower(): node for node in network.validators}
        first, second = by_address[signers[1]], by_address[signers[2]]
        others = [node for node in network.validators if node not in (first, second)]
        half_a, half_b = [first, others[0]], [others[1], second]
        for a in half_a:
            for b in half_b:
                _relink(a, b, keep=False)
        wait_until(lambda: all(int(rpc(n.rpc_url, "net_peerCount"), 16) == 1 for n in network.validators),
                   "halves apart", PROGRESS)
        sent = {"a": send(web3(first.rpc_url), dev_account(4), {}),
                "b": send(web3(others[1].rpc_url), dev_account(5), {})}
        _seal_one(first, others[0], 1)
        _seal_one(others[0], first, 2)
        _seal_one(others[1], second, 1)
        _seal_one(second, others[1], 2)
        assert _confirmations(first, sent["a"]) >= 2 and _confirmations(second, sent["b"]) >= 2
        if getattr(request, "param", True):
            for node in network.validators:  # a restart: the pools' journals now hold what is pending, nothing
                node.stop()
                node.start()
        for node in network.validators:
            rpc(node.rpc_url, "miner_start")
        if not getattr(request, "param", True):
            network.reconnect_peers()  # the halves' links were dropped at both ends
        network.wait_for_peers(timeout=PROGRESS)
        yield network, sent
    finally:
        network.stop()


def _settle_and_check_both_mined(network: CliqueNetwork, sent: dict[str, HexBytes]) -> None:
    assert len(set(heads(network).values())) == 2
    with network.supervised() as supervisor:
        wait_until(lambda: _every_node_reached(network, 8), "the supervised chain moved on", PROGRESS)
    assert supervisor.settled >= 1
    network.wait_for_sync(timeout=PROGRESS)
    node = network.validators[0]
    mined = {half: _confirmations(node, tx_hash) > 0 for half, tx_hash in sent.items()}
    pools = {n.name: rpc(n.rpc_url, "txpool_status") for n in network.validators}
    assert all(mined.values()), f"mined on the final chain: {mined}; pools: {pools}"


def test_transactions_mined_on_the_rewound_fork_are_mined_again(
        forks_with_a_transaction_each: tuple[CliqueNetwork, dict[str, HexBytes]]) -> None:
    _settle_and_check_both_mined(*forks_with_a_transaction_each)


@pytest.mark.parametrize("forks_with_a_transaction_each", [False], indirect=True)
def test_without_a_restart_the_submitting_nodes_journal_brings_them_back(
        forks_with_a_transaction_each: tuple[CliqueNetwork, dict[str, HexBytes]]) -> None:
    """The same, with no restart in between (held): the restart `settle_forks` makes loads each
    validator's journal, which still lists the transaction sent to it."""
    _settle_and_check_both_mined(*forks_with_a_transaction_each)
