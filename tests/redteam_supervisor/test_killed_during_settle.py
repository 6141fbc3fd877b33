"""A validator killed -9 while the supervisor settles it together with another.

`settle_forks` stops, rewinds and lists the validators off the kept fork one after another, then
restarts them all. Here the second is killed as the first is being rewound: the settle ends on the
dead node's error, after the first was rewound (`debug_setHead`) and its miner stopped, but before
it was restarted. Three of four validators still run and answer; the chain must move on, with
every live node on one chain.
"""

from __future__ import annotations

import logging
import os
import signal

from ehr_client.dev.geth import CliqueNetwork, GethNode
from ehr_client.dev.rpc import rpc
from tests.network._chain import wait_until
from tests.network.test_equal_forks import PROGRESS, equal_forks  # noqa: F401  (fixture)


class KillTheOtherLoser(logging.Handler):
    """On the supervisor's first "rewinding it", SIGKILL the other validators on the same fork."""

    def __init__(self, network: CliqueNetwork) -> None:
        super().__init__()
        self.network = network
        self.killed: list[str] = []
        self.rewound: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.rewound is not None or "rewinding it" not in str(record.msg):
            return
        assert isinstance(record.args, tuple)
        name, _, block_hash = record.args[:3]
        self.rewound = str(name)
        for node in self.network.validators:
            if node.name != name and _head_hash(node).startswith(str(block_hash)):
                assert node.pid is not None
                os.killpg(node.pid, signal.SIGKILL)
                self.killed.append(node.name)


def _head_hash(node: GethNode) -> str:
    return str(rpc(node.rpc_url, "eth_getBlockByNumber", "latest", False, timeout=2.0)["hash"])


def _live_heads(network: CliqueNetwork) -> dict[str, tuple[int, str]]:
    found = {}
    for node in network.nodes.values():
        try:
            block = rpc(node.rpc_url, "eth_getBlockByNumber", "latest", False, timeout=2.0)
        except Exception:  # noqa: BLE001  a killed or restarting node
            continue
        found[node.name] = (int(block["number"], 16), str(block["hash"]))
    return found


def test_the_chain_moves_on_when_a_validator_dies_during_a_settle(equal_forks: CliqueNetwork) -> None:  # noqa: F811
    network = equal_forks
    handler = KillTheOtherLoser(network)
    logger = logging.getLogger("ehr_client.dev.clique_watch")
    logger.addHandler(handler)
    try:
        with network.supervised():
            wait_until(lambda: handler.killed, "a validator killed during the settle", PROGRESS)
            live = [node for node in network.nodes.values() if node.name not in handler.killed]
            wait_until(lambda: len(_live_heads(network)) == len(live)
                       and min(number for number, _ in _live_heads(network).values()) >= 5,
                       "every live node past block 4", 2 * PROGRESS)
    finally:
        logger.removeHandler(handler)
    print(f"rewound {handler.rewound}, killed {handler.killed}, heads {_live_heads(network)}")
    lowest = min(number for number, _ in _live_heads(network).values())
    assert len({rpc(node.rpc_url, "eth_getBlockByNumber", hex(lowest), False)["hash"] for node in live}) == 1
