"""`Supervisor`: keeps a running `CliqueNetwork` moving while clients use it.

geth 1.13's Clique has two ways to stand still that no client can fix from outside:
- the head stops. Either no validator allowed to seal starts a round (after an equal-height reorg):
  every validator is made to start a new round (`CliqueNetwork.nudge_sealers`). Or the validators
  sit on different forks (or some are behind) and each is barred on its own fork ("signed
  recently") while the ones allowed to seal next are elsewhere: geth only reconsiders on a new
  block, which nobody may seal. The validators off the heaviest fork are rewound to the block they
  share with it and restarted, and sync it (`settle_forks`): a restarted node's handshakes carry
  each peer's weight;
- a transaction stays in one node's pool while blocks go by without it (its peers ignored the
  announcement: geth drops announced transactions while it thinks it is still syncing, and marks
  them known). Its signed bytes are handed to every other node over JSON-RPC.

Neither remedy drops a p2p link. geth does not dial a peer again within 35 s of its last dial
(`dialHistoryExpiration`), so dropping and re-adding every link, which this supervisor once did
every third stall, cut every node off for up to 35 s each time: a CI run's chain stood at block 10
while the supervisor kept the network apart.

The supervisor is a daemon thread; `CliqueNetwork.supervised()` runs one for a `with` block.
Nodes that are stopped or do not answer are skipped, so it can run while tests stop nodes.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from ehr_client.dev.rpc import RpcRefused, rpc
from ehr_client.errors import ChainUnavailable

if TYPE_CHECKING:
    from ehr_client.dev.geth import CliqueNetwork

log = logging.getLogger(__name__)

STALL_PERIODS = 3  # a head that stands still this many periods gets the sealers nudged
STUCK_BLOCKS = 6  # a pending transaction that many blocks old is handed to every other node
SETTLE_SECONDS = 60.0  # a restarted validator syncs the kept fork within geth's 10 s sync cycle
REPORT_EVERY = 3  # every third stall in a row logs each node's state

PendingKey = tuple[str, str, int]  # node, sender, nonce


class StallWatch:
    """The rule for a head that stands still: after `STALL_PERIODS` periods the validators off the
    heaviest fork are settled onto it, and the sealers are nudged."""

    def __init__(self, network: CliqueNetwork) -> None:
        self.network = network
        self.nudges = 0
        self.settled = 0
        self._head = -1
        self._moved = time.monotonic()
        self._stalls = 0

    def observe(self, head: int) -> None:
        now = time.monotonic()
        if head != self._head:
            self._head, self._moved, self._stalls = head, now, 0
            return
        if now - self._moved <= STALL_PERIODS * self.network.period:
            return
        self._stalls += 1
        self._moved = now
        if self._stalls % REPORT_EVERY == 0:
            log.warning("head stands at %d after %d nudges. Nodes: %s", head, self._stalls,
                        self.network.heads_report())
        try:
            settled = settle_forks(self.network)
        except (ChainUnavailable, RpcRefused) as exc:  # ChainStalled is a ChainUnavailable
            log.warning("head stands at %d; could not settle forks (%s)", head, exc)
            settled = False
        if settled:
            self.settled += 1
        log.warning("head stands at %d; nudging the sealers", head)
        self.network.nudge_sealers()
        self.nudges += 1


class Supervisor:
    def __init__(self, network: CliqueNetwork, *, interval: float | None = None) -> None:
        self.network = network
        self.interval = interval if interval is not None else max(0.5, network.period / 2)
        self.stall = StallWatch(network)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="clique-supervisor", daemon=True)
        self._pending_since: dict[PendingKey, int] = {}
        self.rebroadcasts = 0

    @property
    def nudges(self) -> int:
        return self.stall.nudges


    @property
    def settled(self) -> int:
        return self.stall.settled

    def start(self) -> Supervisor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3 * SETTLE_SECONDS)  # a settle under way restarts validators

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except (ChainUnavailable, RpcRefused) as exc:
                log.debug("supervisor: a node did not answer (%s)", exc)

    def check(self) -> None:
        """One round: look at the heads and the pools, act if the network stands still."""
        heads = self._heads()
        if not heads:
            return
        head = max(heads.values())
        self.stall.observe(head)
        stuck = self._stuck_transactions(heads, head)
        if stuck:
            log.warning("supervisor: %d transactions pending for %d blocks; handing them to every node",
                        len(stuck), STUCK_BLOCKS)
            self._rebroadcast(stuck)
            self._pending_since.clear()

    def _heads(self) -> dict[str, int]:
        heads = {}
        for node in self.network.nodes.values():
            if node.running:
                try:
                    heads[node.name] = int(rpc(node.rpc_url, "eth_blockNumber", timeout=2.0), 16)
                except (ChainUnavailable, RpcRefused):
                    continue
        return heads

    def _stuck_transactions(self, heads: dict[str, int], head: int) -> list[tuple[str, str]]:
        """(node, transaction hash) of each transaction pending in a node's pool for `STUCK_BLOCKS`."""
        pending: dict[PendingKey, int] = {}
        hashes: dict[PendingKey, str] = {}
        for name in heads:
            try:
                content = rpc(self.network.nodes[name].rpc_url, "txpool_content", timeout=2.0)
            except (ChainUnavailable, RpcRefused):
                continue
            for sender, by_nonce in (content.get("pending") or {}).items():
                for nonce, tx in by_nonce.items():
                    key = (name, sender.lower(), int(nonce))
                    pending[key] = self._pending_since.get(key, head)
                    hashes[key] = str(tx["hash"])
        self._pending_since = pending
        return [(key[0], hashes[key]) for key, since in pending.items() if head - since >= STUCK_BLOCKS]

    def _rebroadcast(self, stuck: list[tuple[str, str]]) -> None:
        """Send each stuck transaction's signed bytes, read from the node that holds it, to every
        other running node; a node that already has it (or has mined it) refuses, which is fine."""
        for holder, tx_hash in stuck:
            try:
                raw = rpc(self.network.nodes[holder].rpc_url, "eth_getRawTransactionByHash", tx_hash, timeout=2.0)
            except (ChainUnavailable, RpcRefused):
                continue
            if not raw:
                continue  # mined or dropped since the pool was read
            for node in self.network.nodes.values():
                if node.name != holder and node.running:
                    try:
                        rpc(node.rpc_url, "eth_sendRawTransaction", raw, timeout=2.0)
                    except (ChainUnavailable, RpcRefused):
                        continue  # "already known", "nonce too low", or a node that does not answer
            self.rebroadcasts += 1


def settle_forks(network: CliqueNetwork, *, timeout: float = SETTLE_SECONDS) -> bool:
    """If the running validators do not all hold the same head, keep the heaviest fork (of equal
    weights, the one with the lowest head hash). Every other validator that is peered with a node on
    the kept fork stops sealing, is rewound to the last block it shares with that fork
    (`debug_setHead`) if it holds blocks off it, and is restarted with the others: it seals again
    once it has synced the kept fork. Return whether any validator was restarted.

    geth 1.13 does not put the dropped blocks' transactions back in the rewound node's pool after a
    setHead; they survive where they were sent (a node keeps the transactions sent to it in its
    journal across the restart) and in the pools of the nodes that reorganise normally.

    The restart is what makes it sync: a running geth learns a peer's weight from the handshake
    and from the parent of each block the peer announces, and nobody on the kept fork may seal one;
    a restarted geth dials every peer at once (a fresh process has no dial history). Rewinding
    first keeps it from sealing on its own fork again before it has synced. A validator cut off
    from the kept fork is left alone: restarted, it could not sync.
    """
    tips = {}
    for node in network.validators:
        if node.running:
            try:
                tips[node.name] = _tip(node.rpc_url)
            except (ChainUnavailable, RpcRefused):
                continue  # hung or stopping: neither a fork to keep nor one to rewind
    if len(set(tips.values())) < 2:
        return False
    kept = max(tips.values(), key=lambda tip: (tip[0], -int(tip[2], 16)))
    holders = {name for name, tip in tips.items() if tip == kept}
    holder_ids = {network.nodes[name].spec.node_id for name in holders}
    keeper = network.nodes[min(holders)]
    settling = []
    for name in sorted(set(tips) - holders):
        node = network.nodes[name]
        peered = {str(peer["enode"]).split("//")[1].split("@")[0] for peer in rpc(node.rpc_url, "admin_peers")}
        if not peered & holder_ids:
            continue
        weight, number, block_hash = tips[name]
        ancestor = _shared_block(node.rpc_url, keeper.rpc_url, min(number, kept[1]))
        rpc(node.rpc_url, "miner_stop")
        if ancestor < number:
            log.warning("%s holds block %d %s (weight %d), off the kept fork at %d %s (weight %d); "
                        "rewinding it to block %d", name, number, block_hash[:10], weight, kept[1],
                        kept[2][:10], kept[0], ancestor)
            rpc(node.rpc_url, "debug_setHead", hex(ancestor))
        else:
            log.warning("%s stands at block %d of the kept fork, whose head is %d; restarting it",
                        name, number, kept[1])
        settling.append(node.name)
    if not settling:
        return False
    network.stop(settling)
    try:
        network.start(settling, timeout=timeout)  # each seals again once caught up (CliqueNetwork.start)
    except (ChainUnavailable, RpcRefused) as exc:
        log.warning("%s did not sync the kept fork (%s); they seal again anyway", ", ".join(settling), exc)
        for name in settling:
            node = network.nodes[name]
            try:
                if not node.running:
                    node.start(timeout=timeout)
                rpc(node.rpc_url, "miner_start", timeout=2.0)
            except (ChainUnavailable, RpcRefused):
                continue  # the next stall tries again; the other restarted validators still seal
    return True


def _tip(url: str) -> tuple[int, int, str]:
    """A node's head: total difficulty, number, hash."""
    block = rpc(url, "eth_getBlockByNumber", "latest", False, timeout=2.0)
    return int(block["totalDifficulty"], 16), int(block["number"], 16), str(block["hash"])


def _shared_block(url: str, other_url: str, start: int) -> int:
    """The highest block at or below `start` that both nodes hold."""
    number = start
    while number > 0:
        mine = rpc(url, "eth_getBlockByNumber", hex(number), False)
        theirs = rpc(other_url, "eth_getBlockByNumber", hex(number), False)
        if mine is not None and theirs is not None and mine["hash"] == theirs["hash"]:
            return number
        number -= 1
    return 0
