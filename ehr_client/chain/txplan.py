"""What a transaction needs from the node before it is signed, asked in one JSON-RPC batch.

Gas (`eth_estimateGas`, which also predicts a revert), the sender's next nonce, the latest block's
base fee and the priority fee travel in one round trip, appended to whatever view calls the caller
batches anyway. Answers that failed are `RpcFailure`s, turned into the same typed errors as a
failed view call or estimate anywhere else (`ehr_client.chain.reverts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ehr_client.chain.reverts import revert_error
from ehr_client.errors import ChainUnavailable, EHRError, TransactionReverted

GAS_MARGIN = 1.2
# geth's default --miner.gasprice: its validators refuse remote transactions that tip less, while
# the node that took the transaction keeps it as its own, pending for good. A node not yet synced
# suggests less (CI: a deployment sent to a fresh RPC node was never mined).
MIN_PRIORITY_FEE = 10**9

Request = tuple[str, list[Any]]


@dataclass(frozen=True)
class RpcFailure:
    """A JSON-RPC error for one entry of a batch."""

    code: int
    message: str
    data: bytes | None

    def error(self, *, action: str) -> EHRError:
        if self.data is not None and len(self.data) >= 4:
            return revert_error(self.data, action=action)
        return TransactionReverted(f"{action} failed: the node answered {self.message!r}")


def answer_of(response: dict[str, Any]) -> Any:
    """One entry of a batch's answer: its result, or an RpcFailure."""
    error = response.get("error")
    if error is None:
        return response.get("result")
    data = error.get("data")
    if isinstance(data, dict):
        data = data.get("data")
    raw = bytes.fromhex(data[2:]) if isinstance(data, str) and data.startswith("0x") else None
    return RpcFailure(int(error.get("code", 0)), str(error.get("message", "")), raw)


@dataclass(frozen=True)
class Prepared:
    """What `plan_requests` learnt: gas per transaction (margin included), nonce, fees, and whether
    the node mines on arrival (a send can then wait for the receipt in the same round trip)."""

    gas: tuple[int, ...]
    nonce: int
    fees: dict[str, int]
    mined_on_send: bool = False


def estimate_request(sender: str, to: str | None, data: str) -> Request:
    """`to` None: a contract creation."""
    return "eth_estimateGas", [{"from": sender, "data": data, **({} if to is None else {"to": to})}]


def plan_requests(sender: str, estimates: Sequence[tuple[str | None, str]]) -> list[Request]:
    """An estimate per (to, data), then nonce, latest block, priority fee, and whether the node mines
    each transaction as it arrives (Anvil's automine; an error entry on any other node): for `plan`."""
    return [*(estimate_request(sender, to, data) for to, data in estimates),
            ("eth_getTransactionCount", [sender, "pending"]), ("eth_getBlockByNumber", ["latest", False]),
            ("eth_maxPriorityFeePerGas", []), ("anvil_getAutomine", [])]


def plan(estimates: int, answers: Sequence[Any], *, action: str, known_gas: Sequence[int] = ()) -> Prepared:
    """Interpret the answers to `plan_requests` with `estimates` estimates; a predicted revert is
    raised typed. `known_gas` (raw estimates the caller already has) come first in the result."""
    gas = [int(g * GAS_MARGIN) for g in known_gas]
    for answer in answers[:estimates]:
        if isinstance(answer, RpcFailure):
            raise answer.error(action=action)
        gas.append(int(int(answer, 16) * GAS_MARGIN))
    nonce, block, tip, automine = answers[estimates:]
    if isinstance(nonce, RpcFailure) or isinstance(block, RpcFailure) or not isinstance(block, dict):
        raise ChainUnavailable(f"{action}: the chain node did not return the nonce and the latest block")
    base = block.get("baseFeePerGas")
    if base is None:  # a chain without EIP-1559 (e.g. a free-gas QBFT network): legacy pricing
        fees = {"gasPrice": 0}
    else:
        priority = max(int(tip, 16) if isinstance(tip, str) else MIN_PRIORITY_FEE, MIN_PRIORITY_FEE)
        fees = {"maxPriorityFeePerGas": priority, "maxFeePerGas": priority + 2 * int(base, 16)}
    return Prepared(tuple(gas), int(nonce, 16), fees, automine is True)
