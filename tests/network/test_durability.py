"""A one-validator chain keeps every acknowledged block through kill -9 (geth --gcmode archive).

Control: with geth's default `--gcmode full` the recent state lives only in memory, so the killed
node rewinds to an old block and re-seals the heights it had acknowledged with different blocks.
"""

from __future__ import annotations

from pathlib import Path

from ehr_client.dev.geth import CliqueNetwork, GcMode
from tests.network._chain import dev_account, send, wait_receipt, web3
from tests.network.conftest import start_network

WRITES = 6


def _acknowledge_writes(network: CliqueNetwork) -> tuple[dict[int, bytes], list[bytes]]:
    """Send WRITES transfers, each waited for; return every block hash up to the head, and the tx hashes."""
    w3 = web3(network.rpc_url())
    sender = dev_account(0)
    txs = [bytes(wait_receipt(w3, send(w3, sender, {"value": i + 1}), timeout=30)["transactionHash"])
           for i in range(WRITES)]
    head = w3.eth.block_number
    return {n: bytes(w3.eth.get_block(n)["hash"]) for n in range(head + 1)}, txs


def _kill_and_restart(root: Path, gcmode: GcMode) -> tuple[dict[int, bytes], list[bytes], CliqueNetwork]:
    network = start_network(root, validators=1, gcmode=gcmode)
    acknowledged, txs = _acknowledge_writes(network)
    network.node("validator-1").kill()
    network.start()
    network.wait_for_block(max(acknowledged) + 2, timeout=30)  # sealing again on top of what it kept
    return acknowledged, txs, network


def test_kill_9_keeps_every_acknowledged_block_and_receipt(tmp_path: Path) -> None:
    acknowledged, txs, network = _kill_and_restart(tmp_path / "net", "archive")
    with network:
        w3 = web3(network.rpc_url())
        assert {n: bytes(w3.eth.get_block(n)["hash"]) for n in acknowledged} == acknowledged
        assert all(w3.eth.get_transaction_receipt(tx)["status"] == 1 for tx in txs)
        assert w3.eth.get_balance("0x000000000000000000000000000000000000dEaD") == sum(range(1, WRITES + 1))


def test_control_default_gcmode_loses_acknowledged_blocks_on_kill_9(tmp_path: Path) -> None:
    acknowledged, _, network = _kill_and_restart(tmp_path / "net", "full")
    with network:
        w3 = web3(network.rpc_url())
        kept = {n for n in acknowledged if bytes(w3.eth.get_block(n)["hash"]) == acknowledged[n]}
        assert kept != set(acknowledged)  # the heights were re-sealed with other blocks
        assert "Head state missing, repairing" in network.node("validator-1").log_path.read_text()
