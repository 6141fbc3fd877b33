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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ehr_client.dev._clique_setup import MINER_TIP_FLOOR_WEI
from ehr_client.dev.rpc import RpcRefused, rpc
from ehr_client.errors import ChainUnavailable

if TYPE_CHECKING:
    from ehr_client.dev.geth import CliqueNetwork

log = logging.getLogger(__name__)

STALL_PERIODS = 3  # a head that stands still this many periods gets the sealers nudged
STUCK_BLOCKS = 6  # a pending transaction that many blocks old is handed to every other node
SETTLE_SECONDS = 60.0  # a settle's budget: a restarted validator syncs the kept fork within geth's 10 s sync cycle
STOP_SECONDS = 10.0  # a validator the settle stops gets SIGKILL after this (a hung one ignores SIGTERM)
REPORT_EVERY = 3  # every third stall in a row logs each node's state
SETTLE_AFTER = 2  # the first stall gets a nudge only: a chain that moves brings laggards along itself

PendingKey = tuple[str, str, int]  # node, sender, nonce


class StallWatch:
    """The rule for a head that stands still: after `STALL_PERIODS` periods the sealers are nudged,
    and from the second stall in a row on the validators off the heaviest fork (or behind it) are
    first settled onto it. Validators a settle stopped and could not start again are started at
    each later stall."""

    def __init__(self, network: CliqueNetwork, *, stopping: Callable[[], bool] = lambda: False) -> None:
        self.network = network
        self.nudges = 0
        self.settled = 0
        self._stopping = stopping
        self._head = -1
        self._moved = time.monotonic()
        self._stalls = 0
        self._left_stopped: set[str] = set()

    def observe(self, head: int) -> None:
        now = time.monotonic()
        if head != self._head:
            self._head, self._moved, self._stalls = head, now, 0
            return
        if now - self._moved <= STALL_PERIODS * self.network.period or self._stopping():
            return
        self._stalls += 1
        self._moved = now
        if self._stalls % REPORT_EVERY == 0:
            log.warning("head stands at %d after %d nudges. Nodes: %s", head, self._stalls,
                        self.network.heads_report())
        self._start_left_stopped()
        stopped: list[str] = []
        if self._stalls >= SETTLE_AFTER:
            try:
                stopped = settle_forks(self.network)
            except (ChainUnavailable, RpcRefused) as exc:  # ChainStalled is a ChainUnavailable
                log.warning("head stands at %d; could not settle forks (%s)", head, exc)
        if stopped:
            self.settled += 1
            self._left_stopped.update(name for name in stopped if not self.network.nodes[name].running)
        log.warning("head stands at %d; nudging the sealers", head)
        self.network.nudge_sealers()
        self.nudges += 1

    def _start_left_stopped(self) -> None:
        for name in sorted(self._left_stopped):
            if self._stopping():
                return
            try:
                self.network.start([name], deadline=time.monotonic() + SETTLE_SECONDS)
            except (ChainUnavailable, RpcRefused, OSError) as exc:
                log.warning("%s, stopped by a settle, does not start again (%s); trying at the next stall", name, exc)
                continue
            self._left_stopped.discard(name)


class Supervisor:
    def __init__(self, network: CliqueNetwork, *, interval: float | None = None) -> None:
        self.network = network
        self.interval = interval if interval is not None else max(0.5, network.period / 2)
        self._stop = threading.Event()
        self.stall = StallWatch(network, stopping=self._stop.is_set)
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
        # A settle under way ends within its budget, then the hand-over and nudge time out on hung nodes.
        self._thread.join(timeout=2 * SETTLE_SECONDS + 4 * STOP_SECONDS)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except (ChainUnavailable, RpcRefused) as exc:
                log.debug("supervisor: a node did not answer (%s)", exc)
            except Exception:  # a supervisor that dies leaves the network unwatched: say why, go on
                log.exception("supervisor: a round failed; the next one runs in %.1fs", self.interval)

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
        """(node, transaction hash) of each transaction pending in a node's pool for `STUCK_BLOCKS`
        whose tip the validators take. A tip under their floor keeps it out of their pools, and
        handing it over JSON-RPC would make it local there, which lifts that floor."""
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
                    if _tip_cap(tx) >= MINER_TIP_FLOOR_WEI:
                        hashes[key] = str(tx["hash"])
        self._pending_since = pending
        return [(key[0], tx_hash) for key, tx_hash in hashes.items() if head - pending[key] >= STUCK_BLOCKS]

    def _rebroadcast(self, stuck: list[tuple[str, str]]) -> None:
        """Send each stuck transaction's signed bytes, read from the node that holds it, to every
        other running node."""
        for holder, tx_hash in stuck:
            try:
                raw = rpc(self.network.nodes[holder].rpc_url, "eth_getRawTransactionByHash", tx_hash, timeout=2.0)
            except (ChainUnavailable, RpcRefused):
                continue
            if raw:  # else mined or dropped since the pool was read
                hand_over(self.network, [raw], besides=holder)
                self.rebroadcasts += 1


def _tip_cap(tx: dict[str, Any]) -> int:
    """What a transaction offers the sealer above the base fee, at most (geth's GasTipCap)."""
    return int(str(tx.get("maxPriorityFeePerGas") or tx.get("gasPrice") or "0x0"), 16)


def hand_over(network: CliqueNetwork, raws: Sequence[str], *, besides: str | None = None) -> None:
    """Send signed transactions to every running node but `besides` over JSON-RPC. A node that has
    one already, or has mined it, refuses it, which is fine; a node that does not answer is skipped
    for the rest of the call."""
    targets = [node for node in network.nodes.values() if node.name != besides and node.running]
    for raw in raws:
        for node in list(targets):
            try:
                rpc(node.rpc_url, "eth_sendRawTransaction", raw, timeout=2.0)
            except RpcRefused:
                continue  # "already known", "nonce too low"
            except ChainUnavailable:
                targets.remove(node)


def settle_forks(network: CliqueNetwork, *, timeout: float = SETTLE_SECONDS) -> list[str]:
    """If the running validators do not all hold the same head, keep the heaviest fork (of equal
    weights, the one with the lowest head hash). Every other validator that is peered with a node on
    the kept fork stops sealing, is rewound to the last block it shares with that fork
    (`debug_setHead`) if it holds blocks off it, and is restarted with the others: it seals again
    once it has synced the kept fork. The transactions of the blocks rewound away are handed to
    every node, as a reorganising geth puts them back in its pool. Return the validators stopped;
    any of them not running again by `timeout` is the caller's to start.

    The restart is what makes it sync: a running geth learns a peer's weight from the handshake
    and from the parent of each block the peer announces, and nobody on the kept fork may seal one;
    a restarted geth dials every peer at once (a fresh process has no dial history). Rewinding
    first keeps it from sealing on its own fork again before it has synced. geth 1.13 puts nothing
    back in the pool after a setHead, and a restart loses the pool but its own journal. A validator
    cut off from the kept fork is left alone: restarted, it could not sync.
    """
    deadline = time.monotonic() + timeout
    tips = {}
    for node in network.validators:
        if node.running:
            try:
                tips[node.name] = _tip(node.rpc_url)
            except (ChainUnavailable, RpcRefused):
                continue  # hung or stopping: neither a fork to keep nor one to rewind
    if len(set(tips.values())) < 2:
        return []
    kept = max(tips.values(), key=lambda tip: (tip[0], -int(tip[2], 16)))
    holders = {name for name, tip in tips.items() if tip == kept}
    holder_ids = {network.nodes[name].spec.node_id for name in holders}
    keeper = network.nodes[min(holders)]
    settling: list[str] = []
    dropped: list[str] = []
    for name in sorted(set(tips) - holders):
        node = network.nodes[name]
        try:
            peered = {str(peer["enode"]).split("//")[1].split("@")[0] for peer in rpc(node.rpc_url, "admin_peers")}
            if not peered & holder_ids:
                continue
            weight, number, block_hash = tips[name]
            ancestor = _shared_block(node.rpc_url, keeper.rpc_url, min(number, kept[1]))
            rpc(node.rpc_url, "miner_stop")
        except (ChainUnavailable, RpcRefused) as exc:
            log.warning("%s is left as it is: it stopped answering (%s)", name, exc)
            continue
        settling.append(node.name)  # its miner is stopped: whatever fails next, the restart starts it
        try:
            if ancestor < number:
                log.warning("%s holds block %d %s (weight %d), off the kept fork at %d %s (weight %d); "
                            "rewinding it to block %d", name, number, block_hash[:10], weight, kept[1],
                            kept[2][:10], kept[0], ancestor)
                dropped += _transactions_of(node.rpc_url, range(ancestor + 1, number + 1))
                rpc(node.rpc_url, "debug_setHead", hex(ancestor))
            else:
                log.warning("%s stands at block %d of the kept fork, whose head is %d; restarting it",
                            name, number, kept[1])
        except (ChainUnavailable, RpcRefused) as exc:
            log.warning("%s could not be rewound (%s); it is restarted as it is", name, exc)
    if not settling:
        return []
    network.stop(settling, timeout=STOP_SECONDS)
    try:
        network.start(settling, deadline=deadline)  # each seals again once caught up (CliqueNetwork.start)
    except (ChainUnavailable, RpcRefused, OSError) as exc:
        log.warning("%s did not start and sync the kept fork (%s); those running seal again anyway",
                    ", ".join(settling), exc)
        for name in settling:
            if network.nodes[name].running:
                try:
                    rpc(network.nodes[name].rpc_url, "miner_start", timeout=2.0)
                except (ChainUnavailable, RpcRefused):
                    continue  # the next stall nudges it again
    hand_over(network, list(dict.fromkeys(dropped)))
    return settling


def _transactions_of(url: str, numbers: range) -> list[str]:
    """The signed bytes of every transaction in these blocks of a node's chain."""
    raws = []
    for number in numbers:
        block = rpc(url, "eth_getBlockByNumber", hex(number), False)
        for tx_hash in (block or {}).get("transactions", []):
            raw = rpc(url, "eth_getRawTransactionByHash", tx_hash)
            if raw:
                raws.append(str(raw))
    return raws


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
