"""Many JSON-RPC requests in one HTTP round trip: view calls at any block, logs, and transactions.

web3.py's `batch_requests()` refuses `eth_sendRawTransaction` and cannot pin a call to a block per
entry, so this talks to the provider's `make_batch_request` directly. Transactions are signed
locally, under the same per-sender lock `ChainClient.transact` holds, with consecutive nonces, and
sent in one batch; their receipts are then polled in batches. Reverts become the same typed errors
as everywhere else (`ehr_client.chain.reverts`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from eth_abi import decode
from eth_account.signers.local import LocalAccount
from eth_utils.abi import get_abi_output_types
from web3._utils.method_formatters import receipt_formatter
from web3.contract import Contract

from ehr_client.chain.client import ChainClient, TxResult
from ehr_client.chain.reverts import revert_error
from ehr_client.errors import ChainUnavailable, EHRError, TransactionReverted

_GAS_MARGIN = 1.2
_POLL_SECONDS = 0.02


@dataclass(frozen=True)
class Call:
    """`contract.name(*args)`, as a view call at `block` or as a transaction."""

    contract: Contract
    name: str
    args: tuple[Any, ...] = ()
    block: int | str = "latest"

    def data(self) -> str:
        return str(self.contract.encode_abi(self.name, args=list(self.args)))

    def decode(self, result: str) -> Any:
        abi = self.contract.get_function_by_name(self.name).abi
        types = get_abi_output_types(abi)
        values = decode(types, bytes.fromhex(result.removeprefix("0x")))
        return values[0] if len(values) == 1 else values


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


def rpc_batch(chain: ChainClient, requests_: Sequence[tuple[str, list[Any]]]) -> list[Any]:
    """Send every (method, params) in one round trip; each answer is its result or an RpcFailure."""
    if not requests_:
        return []
    responses = chain.rpc(lambda: chain.provider.make_batch_request(cast(Any, list(requests_))))
    if not isinstance(responses, list) or len(responses) != len(requests_):
        raise ChainUnavailable(f"the chain node at {chain.rpc_url} refused a JSON-RPC batch; it must support batches")
    return [_result(response) for response in cast(list[dict[str, Any]], responses)]


def _result(response: dict[str, Any]) -> Any:
    error = response.get("error")
    if error is None:
        return response.get("result")
    data = error.get("data")
    if isinstance(data, dict):
        data = data.get("data")
    raw = bytes.fromhex(data[2:]) if isinstance(data, str) and data.startswith("0x") else None
    return RpcFailure(int(error.get("code", 0)), str(error.get("message", "")), raw)


def call_request(call: Call, sender: str | None = None) -> tuple[str, list[Any]]:
    tx: dict[str, Any] = {"to": call.contract.address, "data": call.data()}
    if sender is not None:
        tx["from"] = sender
    block = call.block if isinstance(call.block, str) else hex(call.block)
    return "eth_call", [tx, block]


def decoded(call: Call, answer: Any, *, action: str) -> Any:
    """The decoded value of a view call's answer, or its revert raised as a typed error."""
    if isinstance(answer, RpcFailure):
        if answer.data is None and "revert" not in answer.message.lower():
            raise ChainUnavailable(
                f"{action}: the chain node could not answer a call at block {call.block} ({answer.message}); "
                "check the node"
            )
        raise answer.error(action=action)
    return call.decode(str(answer))


def call_many(chain: ChainClient, calls: Sequence[Call], *, action: str) -> list[Any]:
    """View calls, each at its own block, in one round trip; the first revert is raised typed."""
    answers = rpc_batch(chain, [call_request(c) for c in calls])
    return [decoded(c, a, action=action) for c, a in zip(calls, answers, strict=True)]


@dataclass(frozen=True)
class Prepared:
    """What `preparation_requests` learnt in the caller's view batch: gas per call, nonce, fees."""

    gas: tuple[int, ...]
    nonce: int
    fees: dict[str, int]


def preparation_requests(chain: ChainClient, sender: str, calls: Sequence[Call]) -> list[tuple[str, list[Any]]]:
    """Requests to append to a view batch so that `send_prepared` needs no further lookups."""
    estimates = [("eth_estimateGas", [{"from": sender, "to": c.contract.address, "data": c.data()}]) for c in calls]
    return [*estimates, ("eth_getTransactionCount", [sender, "pending"]),
            ("eth_getBlockByNumber", ["latest", False]), ("eth_maxPriorityFeePerGas", [])]


def prepared(calls: Sequence[Call], answers: Sequence[Any], *, action: str) -> Prepared:
    """Interpret the answers to `preparation_requests`; a predicted revert is raised typed."""
    count = len(calls)
    gas = []
    for answer in answers[:count]:
        if isinstance(answer, RpcFailure):
            raise answer.error(action=action)
        gas.append(int(int(answer, 16) * _GAS_MARGIN))
    nonce, block, tip = answers[count:]
    if isinstance(nonce, RpcFailure) or isinstance(block, RpcFailure) or not isinstance(block, dict):
        raise ChainUnavailable(f"{action}: the chain node did not return the nonce and the latest block")
    base = block.get("baseFeePerGas")
    if base is None:  # a chain without EIP-1559 (e.g. a free-gas QBFT network): legacy pricing
        fees = {"gasPrice": 0}
    else:
        priority = int(tip, 16) if isinstance(tip, str) else 10**9
        fees = {"maxPriorityFeePerGas": priority, "maxFeePerGas": priority + 2 * int(base, 16)}
    return Prepared(tuple(gas), int(nonce, 16), fees)


def send_prepared(
    chain: ChainClient, account: LocalAccount, calls: Sequence[Call], plan: Prepared, *, action: str
) -> list[str]:
    """Sign `calls` with consecutive nonces and send them in one batch; returns their hashes.

    The caller holds `sender_lock(chain, account)` from before the nonce was read until this
    returns, so no other thread of this process takes the same nonces.
    """
    raw = []
    for offset, (call, gas) in enumerate(zip(calls, plan.gas, strict=True)):
        tx: dict[str, Any] = {"to": call.contract.address, "data": call.data(), "value": 0, "gas": gas,
              "nonce": plan.nonce + offset, "chainId": chain.chain_id, **plan.fees}
        raw.append("0x" + account.sign_transaction(tx).raw_transaction.hex())
    hashes = []
    for answer in rpc_batch(chain, [("eth_sendRawTransaction", [r]) for r in raw]):
        if isinstance(answer, RpcFailure):
            raise TransactionReverted(f"{action} failed: the node refused the transaction ({answer.message})")
        hashes.append(str(answer))
    return hashes


def await_results(
    chain: ChainClient, account: LocalAccount, calls: Sequence[Call], hashes: Sequence[str], *, action: str
) -> list[TxResult]:
    """Wait for every receipt (polled in batches); a reverted one is raised as its typed error."""
    results = []
    for call, receipt in zip(calls, _await_receipts(chain, list(hashes), action=action), strict=True):
        if receipt["status"] != 1:
            at = Call(call.contract, call.name, call.args, int(receipt["blockNumber"]) - 1)
            failure = rpc_batch(chain, [call_request(at, account.address)])[0]
            if isinstance(failure, RpcFailure):
                raise failure.error(action=action)
            raise TransactionReverted(f"{action} failed: transaction {receipt['transactionHash'].to_0x_hex()} reverted")
        receipt = chain.confirm(receipt, action=action)
        results.append(TxResult(receipt["transactionHash"].to_0x_hex(), int(receipt["blockNumber"]),
                                int(receipt["gasUsed"]), tuple(receipt["logs"])))
    return results


def _await_receipts(chain: ChainClient, hashes: list[str], *, action: str) -> list[Any]:
    receipts: dict[str, Any] = {}
    deadline = time.monotonic() + chain.timeout
    while True:
        missing = [h for h in hashes if h not in receipts]
        for tx_hash, answer in zip(missing, rpc_batch(chain, [("eth_getTransactionReceipt", [h]) for h in missing]),
                                   strict=True):
            if isinstance(answer, dict):
                receipts[tx_hash] = receipt_formatter(answer)
        if len(receipts) == len(hashes):
            return [receipts[h] for h in hashes]
        if time.monotonic() >= deadline:
            raise ChainUnavailable(
                f"{action}: {len(hashes) - len(receipts)} of {len(hashes)} transactions were not mined within "
                f"{chain.timeout:.0f}s (first: {missing[0]}); check that the node is producing blocks"
            )
        time.sleep(_POLL_SECONDS)


def sender_lock(chain: ChainClient, account: LocalAccount) -> Any:
    """The lock `ChainClient.transact` holds per sender while it picks a nonce."""
    return chain.sender_lock(account.address)
