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
from ehr_client.dev.clique_watch import REPORT_EVERY
from tests.network._chain import cut_apart, dev_account, linked, send, stop_sealing, wait_until, web3


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


def test_a_transaction_only_one_node_holds_is_mined_once_the_supervisor_hands_it_on(network: CliqueNetwork) -> None:
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
        assert supervisor.rebroadcasts >= 1
        assert not any(linked(rpc_node, validator) for validator in network.validators)  # handed on, not re-linked
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



def test_a_long_stall_never_cuts_a_node_off_its_peers(network: CliqueNetwork) -> None:
    """CI: a fresh network's head stood at block 10 for 30 s while the supervisor nudged the sealers
    and, every third stall, dropped and re-added every p2p link. geth does not dial a peer again
    within 35 s of its last dial, so each re-link after the first left every node alone for up to
    35 s, and no block could be sealed. Here two of four validators hang (SIGSTOP), so no remedy can
    move the head; through two rounds of the stall report, the nodes that still answer must stay
    linked, and the chain must move as soon as the hung validators come back."""
    hung, live_validators = network.validators[:2], network.validators[2:]
    live = live_validators + network.rpc_nodes
    pairs = [(a, b) for i, a in enumerate(live) for b in live[i + 1:]]
    head = _highest_head(live)
    cut: list[str] = []
    try:
        for node in hung:
            assert node.pid is not None
            os.kill(node.pid, signal.SIGSTOP)
        with network.supervised() as supervisor:
            deadline = time.monotonic() + 180
            while supervisor.nudges < 2 * REPORT_EVERY + 1 and time.monotonic() < deadline:
                cut += [f"{a.name}-{b.name}" for a, b in pairs if not linked(a, b)]
                time.sleep(0.5)
            assert supervisor.nudges >= 2 * REPORT_EVERY + 1
            assert _highest_head(live) <= head + 2  # the fault held: the two live validators seal a block each at most
            assert not cut, f"links dropped during the stall: {sorted(set(cut))}"
            for node in hung:
                os.kill(node.pid, signal.SIGCONT)  # type: ignore[arg-type]
            # The live nodes dropped their links to the hung ones (geth's 30 s read timeout), and a
            # dial that failed while they hung is retried only after 35 s.
            wait_until(lambda: _highest_head(live) >= head + 3, "the chain moved once all four answered", 120)
    finally:
        for node in hung:
            if node.pid is not None:
                os.kill(node.pid, signal.SIGCONT)
