"""Raw transactions on a geth network, signed locally, with deadlines that end in typed errors."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.exceptions import TransactionIndexingInProgress, TransactionNotFound
from web3.middleware import ExtraDataToPOAMiddleware

from ehr_client.dev.geth import CliqueNetwork, GethNode
from ehr_client.dev.rpc import rpc
from ehr_client.errors import ChainStalled
from ehr_client.dev.node import DEV_MNEMONIC

SINK = "0x000000000000000000000000000000000000dEaD"
QUIET = 4.0  # seconds: a period (1 s) plus Clique's largest out-of-turn wiggle with four signers (1.5 s), and room


def dev_account(index: int) -> LocalAccount:
    """An account of the development mnemonic (also Ape's TEST:: accounts); the networks fund 0..5."""
    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


def web3(url: str) -> Web3:
    """A Web3 for a Clique chain: its extraData (vanity + signature, 97 bytes) needs the POA middleware."""
    w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 10}))
    w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    return w3


def send(w3: Web3, sender: LocalAccount, tx: dict[str, Any]) -> HexBytes:
    """Sign and send `tx` (value transfer to SINK unless `to`/`data` say otherwise)."""
    full = {"to": SINK, "value": 1, "chainId": w3.eth.chain_id, "gas": 100_000,
            "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
            "maxFeePerGas": 10 * 10**9, "maxPriorityFeePerGas": 10**9, **tx}
    return HexBytes(w3.eth.send_raw_transaction(sender.sign_transaction(full).raw_transaction))


def wait_receipt(w3: Web3, tx_hash: HexBytes, *, timeout: float) -> Any:
    """The receipt, or ChainStalled once `timeout` seconds pass without inclusion.

    geth answers "transaction indexing is in progress" for a while after it starts: not yet, too.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return w3.eth.get_transaction_receipt(tx_hash)
        except (TransactionNotFound, TransactionIndexingInProgress):
            pass
        if time.monotonic() >= deadline:
            raise ChainStalled(f"transaction {tx_hash.hex()} not included within {timeout:.0f}s")
        time.sleep(0.1)


def stop_sealing(network: CliqueNetwork, *, timeout: float) -> tuple[int, str] | None:
    """Stop every validator's miner and wait until no node's head has moved for `QUIET` seconds;
    return the head (number, hash) if every node holds the same block there, None if they do not.

    `miner_stop` does not cancel a seal under way: an out-of-turn block lands up to a period plus
    Clique's wiggle later (a CI run read the head as 15 while a block 16 was on its way, then waited
    for every node to be at 15).
    """
    for node in network.validators:
        rpc(node.rpc_url, "miner_stop")
    deadline = time.monotonic() + timeout
    seen, since = heads(network), time.monotonic()
    while time.monotonic() - since < QUIET:
        if time.monotonic() >= deadline:
            raise ChainStalled(f"heads still moving {timeout:.0f}s after sealing stopped: {seen}")
        time.sleep(0.2)
        now = heads(network)
        if now != seen:
            seen, since = now, time.monotonic()
    blocks = set(seen.values())
    return blocks.pop() if len(blocks) == 1 else None


def heads(network: CliqueNetwork) -> dict[str, tuple[int, str]]:
    """Each node's head: number and hash."""
    return {node.name: (int(block["number"], 16), block["hash"])
            for node in network.nodes.values()
            for block in [rpc(node.rpc_url, "eth_getBlockByNumber", "latest", False)]}


def cut_apart(side: Iterable[GethNode], other: Iterable[GethNode]) -> bool:
    """Drop every link between `side` and `other` at both ends, and say whether none is left.

    Poll it with `wait_until` until it says so. `admin_removePeer` drops a link and the static entry
    at one end only; the other end, which still lists the first as a static peer, dials it again at
    once (unless it dialled it within geth's 35 s dial history), and a dial still under way when
    the second end's removePeer lands outlives it (a CI run's supervisor test, 35 s after the last
    dials, kept two of the RPC node's four links). Once both ends have forgotten each other nobody
    dials again, so the next round removes what is left for good.
    """
    pairs = [(node, peer) for node in side for peer in other]
    for node, peer in pairs:
        rpc(node.rpc_url, "admin_removePeer", peer.spec.enode)
        rpc(peer.rpc_url, "admin_removePeer", node.spec.enode)
    return not any(linked(node, peer) or linked(peer, node) for node, peer in pairs)


def linked(node: GethNode, peer: GethNode) -> bool:
    """Whether `node` holds a p2p link to `peer`."""
    return any(peer.spec.node_id in str(link["enode"]) for link in rpc(node.rpc_url, "admin_peers"))


def wait_until(condition: Callable[[], object], what: str, timeout: float) -> None:
    """Poll `condition` until it holds; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} within {timeout:.0f}s")
        time.sleep(0.2)
