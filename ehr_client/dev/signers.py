"""Vote a Clique signer set into a wanted shape through the operator's own validator nodes.

Clique changes its signer set only by votes: each signer, in the blocks it seals, votes for one of
its node's pending proposals (`clique_propose`), and a change takes effect once more than half of
the current signers voted for it. So this module proposes every difference on each node it is
given, waits (with a deadline) until the chain's signer set is the wanted one, and then discards
its proposals: a proposal left pending would keep voting, e.g. re-add a validator that governance
later removed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from eth_utils import to_checksum_address

from ehr_client.dev.rpc import rpc
from ehr_client.errors import ChainStalled, ConfigError


@dataclass(frozen=True)
class SignerSync:
    added: list[str]
    removed: list[str]
    signers: list[str]


def current_signers(url: str) -> set[str]:
    return {to_checksum_address(s) for s in rpc(url, "clique_getSigners", None)}


def sync_signers(node_urls: Sequence[str], wanted: Iterable[str], *, timeout: float = 60.0) -> SignerSync:
    """Propose on every node in `node_urls` until the signer set equals `wanted`; ChainStalled after `timeout`."""
    target = {to_checksum_address(a) for a in wanted}
    if not target:
        raise ConfigError("no active validator in the Consortium: a chain needs at least one signer; admit the "
                          "validators first (`ehr consortium propose admit ADDRESS --role validator`)")
    if not node_urls:
        raise ConfigError("no running validator node of yours to vote with; `ehr network up` first")
    before = current_signers(node_urls[0])
    added, removed = sorted(target - before), sorted(before - target)
    votes = [(a, True) for a in added] + [(a, False) for a in removed]
    for url in node_urls:
        for address, authorize in votes:
            rpc(url, "clique_propose", address, authorize)
    deadline = time.monotonic() + timeout
    now = before
    while now != target:
        if time.monotonic() >= deadline:
            raise ChainStalled(
                f"after {timeout:.0f}s the signer set is {sorted(now)}, not {sorted(target)}: a change needs votes "
                f"from more than half of the {len(now)} signers. The votes stay proposed on your nodes; operators "
                "of the other validators run `ehr network sync-validators` too, then run it again")
        time.sleep(0.2)
        now = current_signers(node_urls[0])
    for url in node_urls:
        for address, _ in votes:
            rpc(url, "clique_discard", address)
    return SignerSync([str(a) for a in added], [str(a) for a in removed], sorted(str(a) for a in now))
