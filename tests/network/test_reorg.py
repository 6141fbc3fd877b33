"""A real Clique fork: the network split in two, each half seals its own blocks, then heals.

The half whose blocks lose reorganises; an audit index that had taken in the losing blocks must
drop them and index the chain that won, ending exactly where a fresh index of the same chain does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import TransactionNotFound

from ehr_client.audit import AuditIndex
from ehr_client.chain.client import ChainClient, deploy_suite
from ehr_client.dev.geth import CliqueNetwork, GethNode
from ehr_client.dev.rpc import rpc
from tests.network._chain import cut_apart, dev_account, send, stop_sealing, wait_receipt, wait_until, web3

PROGRESS = 60.0


def _split(winners: list[GethNode], losers: list[GethNode]) -> bool:
    """Cut the halves apart (again: a removed peer can be dialled back before the other side removes it,
    which left a CI run's split unfinished after 60 s) and say whether they are apart."""
    return cut_apart(winners, losers) and _peer_counts(losers) == [1, 1] and _peer_counts(winners) == [2, 2, 2]


def _peer_counts(nodes: list[GethNode]) -> list[int]:
    return [int(rpc(node.rpc_url, "net_peerCount"), 16) for node in nodes]


def _freeze_and_split(network: CliqueNetwork) -> tuple[int, list[GethNode], list[GethNode]]:
    """Stop sealing at a head every node holds, whose next in-turn signer sealed neither of the last
    two blocks; return the head and a split whose winning half must outweigh the other.

    With four signers nobody seals twice within three blocks. The winning half holds the next
    in-turn signer and the sealer of the block before the head: it seals two blocks, the first
    in turn (difficulty 2). The losing half (the head's sealer and the fourth signer) can seal one,
    out of turn (difficulty 1), so whichever order the blocks arrive in, the losers reorganise.
    """
    for _ in range(10):
        frozen = stop_sealing(network, timeout=PROGRESS)
        if frozen is not None:
            head = frozen[0]
            signers = network.signers()
            in_turn = signers[(head + 1) % len(signers)].lower()
            recent = [network.sealer(head - 1).lower(), network.sealer(head).lower()]
            if in_turn not in recent:
                winning = {in_turn, recent[0]}
                winners = [n for n in network.nodes.values()
                           if n.spec.address is None or n.spec.address.lower() in winning]
                losers = [n for n in network.validators if n not in winners]
                return head, winners, losers
        restart_at = network.head()
        for node in network.validators:
            rpc(node.rpc_url, "miner_start")
        network.wait_for_block(restart_at + 2, timeout=PROGRESS)
    raise AssertionError("no quiet head that every node holds, with an in-turn signer free to seal, in ten tries")


@pytest.fixture
def healed(network: CliqueNetwork) -> Iterator[CliqueNetwork]:
    """Whatever the test split, every node is peered and sealing again afterwards."""
    yield network
    network.reconnect_peers()
    for node in network.validators:
        rpc(node.rpc_url, "miner_start")
    network.wait_for_peers(timeout=PROGRESS)
    network.wait_for_sync(timeout=PROGRESS)


def test_split_network_reorganises_and_the_audit_index_follows_the_winner(healed: CliqueNetwork,
                                                                          tmp_path: Path) -> None:
    network = healed
    governor, patient = dev_account(0), dev_account(4)
    with network.supervised():  # a fresh network can stand still on an equal-height fork; nobody is split yet
        deployment = deploy_suite(network.rpc_url(), governor, network="fork", governors=[governor.address],
                                  threshold=1, confirmations=3)

    head, winners, losers = _freeze_and_split(network)
    wait_until(lambda: _split(winners, losers), "the split", PROGRESS)

    # On the losing half, the patient registers and an index takes that block in.
    lost_side = ChainClient(losers[0].rpc_url, deployment)
    index = AuditIndex.open(lost_side, tmp_path / "loser")
    # Sent before sealing resumes: the losing half can seal one block only, and it must hold this.
    loser_chain = web3(losers[0].rpc_url)
    call = lost_side.records.functions.registerPatient()
    tx_hash = send(loser_chain, patient, {"to": call.address, "data": call._encode_transaction_data(), "value": 0})
    for node in network.validators:
        rpc(node.rpc_url, "miner_start")
    mined = wait_receipt(loser_chain, tx_hash, timeout=PROGRESS)
    assert mined["status"] == 1 and mined["blockNumber"] == head + 1
    lost_block = mined["blockHash"]
    index.sync()
    assert [row.name for row in index.trail(patient=patient.address)] == ["PatientRegistered"]
    network.wait_for_block(head + 2, name=winners[0].name, timeout=PROGRESS)
    assert web3(losers[0].rpc_url).eth.get_block(head + 1)["hash"] != web3(winners[0].rpc_url).eth.get_block(head + 1)["hash"]

    # Heal: the losing half syncs to the heavier chain, and the registration is sealed again there.
    network.reconnect_peers()
    network.wait_for_peers(timeout=PROGRESS)
    winner_chain = web3(winners[0].rpc_url)
    wait_until(lambda: web3(losers[0].rpc_url).eth.get_block(head + 1)["hash"] == winner_chain.eth.get_block(head + 1)["hash"],
               "the losing half on the winning chain", PROGRESS)
    wait_until(lambda: _receipt(winner_chain, tx_hash) is not None, "the registration sealed again", PROGRESS)
    receipt = _receipt(winner_chain, tx_hash)
    assert receipt is not None and receipt["blockHash"] != lost_block and receipt["status"] == 1
    network.wait_for_block(receipt["blockNumber"] + 1, name=losers[0].name, timeout=PROGRESS)

    report = index.sync()
    assert report.rolled_back_to is not None and report.rolled_back_to <= head
    rows = index.trail(patient=patient.address)
    assert [(row.name, row.tx_hash.lower()) for row in rows] == [("PatientRegistered", tx_hash.to_0x_hex().lower())]
    fresh = AuditIndex.open(ChainClient(winners[0].rpc_url, deployment), tmp_path / "fresh")
    fresh.sync(to_block=index.last_block)
    assert index.positions() == fresh.positions()


def _receipt(w3: Web3, tx_hash: HexBytes) -> Any:
    try:
        return w3.eth.get_transaction_receipt(tx_hash)
    except TransactionNotFound:
        return None
