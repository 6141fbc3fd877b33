"""`Supervisor`: keeps a running `CliqueNetwork` moving while clients use it.

geth 1.13's Clique has two ways to stand still that no client can fix from outside:
- the head stops (after an equal-height reorg no validator allowed to seal starts a round, or
  nodes sit on different forks and each refuses to sign again "recently"): every validator is
  made to start a new round (`CliqueNetwork.nudge_sealers`), and every third time the peers are
  reconnected as well (`CliqueNetwork.reconnect_peers`: fresh handshakes carry each fork's weight).
  Forks of equal weight stay apart even then, since geth only reconsiders on a new block: the
  validators off one chosen fork are rewound and sync it (`settle_equal_forks`);
- a transaction stays in one node's pool while blocks go by without it (its peers ignored the
  announcement: geth drops announced transactions while it thinks it is still syncing, and marks
  them known). Reconnecting makes every node send its pool to its new peers.

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
STUCK_BLOCKS = 6  # a pending transaction that many blocks old gets the peers reconnected
SETTLE_SECONDS = 60.0  # a restarted validator syncs the kept fork within geth's 10 s sync cycle

PendingKey = tuple[str, str, int]  # node, sender, nonce


class StallWatch:
    """The rule for a head that stands still: after `STALL_PERIODS` periods the sealers are nudged,
    and every third time the peers are reconnected first."""

    def __init__(self, network: CliqueNetwork) -> None:
        self.network = network
        self.nudges = 0
        self.reconnects = 0
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
        try:
            settled = settle_equal_forks(self.network)
        except (ChainUnavailable, RpcRefused) as exc:  # ChainStalled is a ChainUnavailable
            log.warning("head stands at %d; could not settle forks (%s)", head, exc)
            settled = False
        if settled:
            self.settled += 1
        elif self._stalls % 3 == 0:
            log.warning("head stands at %d; reconnecting the peers. Nodes: %s", head, self.network.heads_report())
            self.reconnect()
        log.warning("head stands at %d; nudging the sealers", head)
        self.network.nudge_sealers()
        self.nudges += 1

    def reconnect(self) -> None:
        self.network.reconnect_peers()
        self.reconnects += 1


class Supervisor:
    def __init__(self, network: CliqueNetwork, *, interval: float | None = None) -> None:
        self.network = network
        self.interval = interval if interval is not None else max(0.5, network.period / 2)
        self.stall = StallWatch(network)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="clique-supervisor", daemon=True)
        self._pending_since: dict[PendingKey, int] = {}

    @property
    def nudges(self) -> int:
        return self.stall.nudges

    @property
    def reconnects(self) -> int:
        return self.stall.reconnects

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
        if self._stuck_transactions(heads, head):
            log.warning("supervisor: transactions pending for %d blocks; reconnecting the peers", STUCK_BLOCKS)
            self.stall.reconnect()
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

    def _stuck_transactions(self, heads: dict[str, int], head: int) -> bool:
        pending: dict[PendingKey, int] = {}
        for name in heads:
            try:
                inspect = rpc(self.network.nodes[name].rpc_url, "txpool_inspect", timeout=2.0)
            except (ChainUnavailable, RpcRefused):
                continue
            for sender, by_nonce in (inspect.get("pending") or {}).items():
                for nonce in by_nonce:
                    key = (name, sender.lower(), int(nonce))
                    pending[key] = self._pending_since.get(key, head)
        self._pending_since = pending
        return any(head - since >= STUCK_BLOCKS for since in pending.values())


def settle_equal_forks(network: CliqueNetwork, *, timeout: float = SETTLE_SECONDS) -> bool:
    """If the heaviest running validators hold different heads of equal total difficulty, keep the
    fork with the lowest head hash: every other validator at that weight that is peered with a node
    on the kept fork stops sealing, is rewound to the last block both forks share (`debug_setHead`)
    and restarted, and seals again once it has synced the kept fork. Return whether any validator
    was rewound.

    geth 1.13 does not put the dropped blocks' transactions back in the rewound node's pool after a
    setHead; they survive where they were sent (a node keeps the transactions sent to it in its
    journal across the restart) and in the pools of the nodes that reorganise normally.

    The restart is what makes it sync: a running geth looks for a heavier peer only when a peer
    connects or announces a block, and nobody on the kept fork may seal one. A validator cut off
    from the kept fork is left alone: rewound, it could not sync.
    """
    tips = {}
    for node in network.validators:
        if node.running:
            try:
                tips[node.name] = _tip(node.rpc_url)
            except (ChainUnavailable, RpcRefused):
                continue  # hung or stopping: neither a fork to keep nor one to rewind
    if not tips:
        return False
    heaviest = max(weight for weight, _, _ in tips.values())
    top = {name: tip for name, tip in tips.items() if tip[0] == heaviest}
    if len({block_hash for _, _, block_hash in top.values()}) < 2:
        return False
    kept = min(top.values(), key=lambda tip: int(tip[2], 16))
    holders = {name for name, tip in top.items() if tip == kept}
    holder_ids = {network.nodes[name].spec.node_id for name in holders}
    keeper = network.nodes[min(holders)]
    rewound = []
    for name in sorted(set(top) - holders):
        node = network.nodes[name]
        peered = {str(peer["enode"]).split("//")[1].split("@")[0] for peer in rpc(node.rpc_url, "admin_peers")}
        if not peered & holder_ids:
            continue
        ancestor = _shared_block(node.rpc_url, keeper.rpc_url, min(top[name][1], kept[1]))
        log.warning("%s holds block %d %s, of the same weight as %s on another fork; rewinding it to block %d",
                    name, top[name][1], top[name][2][:10], kept[2][:10], ancestor)
        rpc(node.rpc_url, "miner_stop")
        rpc(node.rpc_url, "debug_setHead", hex(ancestor))
        rewound.append(node)
    for node in rewound:
        try:
            network.restart(node.name, timeout=timeout)  # seals again once caught up (CliqueNetwork.start)
        except (ChainUnavailable, RpcRefused) as exc:
            log.warning("%s did not sync the kept fork (%s); it seals again anyway", node.name, exc)
            try:
                rpc(node.rpc_url, "miner_start", timeout=2.0)
            except (ChainUnavailable, RpcRefused):
                continue  # the next stall tries again; the other rewound validators still restart
    return bool(rewound)


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
