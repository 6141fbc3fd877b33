"""Many JSON-RPC requests in one HTTP round trip: view calls at any block, logs, and transactions.

web3.py's `batch_requests()` refuses `eth_sendRawTransaction` and cannot pin a call to a block per
entry, so this talks to the provider's `make_batch_request` directly. Transactions are signed
locally, under the same per-sender lock `ChainClient.transact` holds, with consecutive nonces, and
sent in one batch; their receipts come with the send on a node that mines on arrival, and are
polled in batches otherwise. Reverts become the same typed errors
as everywhere else (`ehr_client.chain.reverts`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from eth_abi import decode, encode
from eth_abi.exceptions import EncodingError
from eth_account.signers.local import LocalAccount
from eth_utils.abi import function_abi_to_4byte_selector, get_abi_input_types, get_abi_output_types
from web3._utils.method_formatters import receipt_formatter
from web3.contract import Contract

from ehr_client.chain.client import ChainClient, Displacement, TxResult
from ehr_client.chain.txplan import Prepared, RpcFailure, plan, plan_requests
from ehr_client.errors import ChainUnavailable, EHRError, NonceDisplaced, TransactionReverted

__all__ = ["Call", "Prepared", "RpcFailure", "Sent", "call_many", "call_request", "decoded", "failure_error",
           "preparation_requests",
           "prepared", "rpc_batch", "send_prepared", "await_results", "sender_lock"]

_POLL_SECONDS = 0.02
_RESENDS = 5


@dataclass(frozen=True)
class Call:
    """`contract.name(*args)`, as a view call at `block` or as a transaction."""

    contract: Contract
    name: str
    args: tuple[Any, ...] = ()
    block: int | str = "latest"

    def data(self) -> str:
        selector, inputs, _ = _signature(self.contract, self.name)
        try:
            return "0x" + (selector + encode(inputs, self.args)).hex()
        except (EncodingError, TypeError, ValueError):  # arguments web3 would first normalise (hex strings, ...)
            return str(self.contract.encode_abi(self.name, args=list(self.args)))

    def decode(self, result: str) -> Any:
        values = decode(_signature(self.contract, self.name)[2], bytes.fromhex(result.removeprefix("0x")))
        return values[0] if len(values) == 1 else values


_signatures: dict[tuple[str, str], tuple[object, bytes, list[str], list[str]]] = {}


def _signature(contract: Contract, name: str) -> tuple[bytes, list[str], list[str]]:
    """Selector, input and output types of `contract.name`, worked out once per contract ABI: web3's
    `encode_abi` validates the whole ABI and hashes every signature on each call (~4 ms a call)."""
    key = (str(contract.address), name)
    hit = _signatures.get(key)
    if hit is None or hit[0] is not contract.abi:
        abi = contract.get_function_by_name(name).abi
        hit = (contract.abi, function_abi_to_4byte_selector(abi), get_abi_input_types(abi), get_abi_output_types(abi))
        _signatures[key] = hit
    _, selector, inputs, outputs = hit
    return selector, inputs, outputs


def rpc_batch(chain: ChainClient, requests_: Sequence[tuple[str, list[Any]]]) -> list[Any]:
    """Send every (method, params) in one round trip; each answer is its result or an RpcFailure."""
    return chain.batch(requests_)


def call_request(call: Call, sender: str | None = None) -> tuple[str, list[Any]]:
    tx: dict[str, Any] = {"to": call.contract.address, "data": call.data()}
    if sender is not None:
        tx["from"] = sender
    block = call.block if isinstance(call.block, str) else hex(call.block)
    return "eth_call", [tx, block]


def decoded(call: Call, answer: Any, *, action: str) -> Any:
    """The decoded value of a view call's answer, or its revert raised as a typed error."""
    if isinstance(answer, RpcFailure):
        raise failure_error(answer, action=action, what=f"a call at block {call.block}")
    return call.decode(str(answer))


def failure_error(answer: RpcFailure, *, action: str, what: str) -> EHRError:
    """A failed entry of a batch as a typed error: its revert, or `ChainUnavailable` when the node
    could not answer `what` at all."""
    if answer.data is None and "revert" not in answer.message.lower():
        return ChainUnavailable(f"{action}: the chain node could not answer {what} ({answer.message}); check the node")
    return answer.error(action=action)


def call_many(chain: ChainClient, calls: Sequence[Call], *, action: str) -> list[Any]:
    """View calls, each at its own block, in one round trip; the first revert is raised typed."""
    answers = rpc_batch(chain, [call_request(c) for c in calls])
    return [decoded(c, a, action=action) for c, a in zip(calls, answers, strict=True)]


def preparation_requests(chain: ChainClient, sender: str, calls: Sequence[Call]) -> list[tuple[str, list[Any]]]:
    """Requests to append to a view batch so that `send_prepared` needs no further lookups."""
    return plan_requests(sender, [(c.contract.address, c.data()) for c in calls])


def prepared(calls: Sequence[Call], answers: Sequence[Any], *, action: str) -> Prepared:
    """Interpret the answers to `preparation_requests`; a predicted revert is raised typed."""
    return plan(len(calls), answers, action=action)


def send_prepared(
    chain: ChainClient, account: LocalAccount, calls: Sequence[Call], plan: Prepared, *, action: str
) -> Sent:
    """Sign `calls` with consecutive nonces and send them in one batch; returns their hashes, and their
    receipts when the node mines on arrival (`ChainClient.send_raws`: the send then waits for them).

    The caller holds `sender_lock(chain, account)` from before the nonce was read until this
    returns, so no other thread of this process takes the same nonces.
    """
    raw = []
    for offset, (call, gas) in enumerate(zip(calls, plan.gas, strict=True)):
        tx: dict[str, Any] = {"to": call.contract.address, "data": call.data(), "value": 0, "gas": gas,
              "nonce": plan.nonce + offset, "chainId": chain.chain_id, **plan.fees}
        raw.append(bytes(account.sign_transaction(tx).raw_transaction))
    hashes: list[str] = []
    receipts: dict[str, Any] = {}
    for answer, receipt in chain.send_raws(raw, mined_on_send=plan.mined_on_send):
        if isinstance(answer, RpcFailure):
            raise TransactionReverted(f"{action} failed: the node refused the transaction ({answer.message})")
        hashes.append(answer.to_0x_hex())
        if receipt is not None:
            receipts[hashes[-1]] = receipt
    return Sent(hashes, receipts, plan.nonce)


@dataclass(frozen=True)
class Sent:
    """Transactions handed to the node: their hashes in order, the receipts already known, the first nonce."""

    hashes: list[str]
    receipts: dict[str, Any]
    first_nonce: int


def await_results(
    chain: ChainClient, account: LocalAccount, calls: Sequence[Call], sent: Sent, *, action: str,
    watch_nonces: bool = True,
) -> list[TxResult]:
    """Wait for every receipt (those the send did not answer with are polled in batches); a reverted
    one is raised as its typed error.

    With `watch_nonces`, a transaction whose nonce another transaction of the same account took is
    planned and sent again, up to a few times, then `NonceDisplaced`.
    """
    hashes = list(sent.hashes)
    receipts = dict(sent.receipts)
    nonces = [sent.first_nonce + offset for offset in range(len(hashes))] if watch_nonces else None
    for _ in range(_RESENDS):
        try:
            mined = _await_receipts(chain, hashes, action=action, sender=account.address, nonces=nonces,
                                    known=receipts)
            break
        except _Displaced as displaced:
            assert nonces is not None
            redo = [calls[i] for i in displaced.indexes]
            with sender_lock(chain, account):
                plan = prepared(redo, rpc_batch(chain, preparation_requests(chain, account.address, redo)),
                                action=action)
                fresh = send_prepared(chain, account, redo, plan, action=action)
            receipts.update(fresh.receipts)
            for offset, (index, tx_hash) in enumerate(zip(displaced.indexes, fresh.hashes, strict=True)):
                hashes[index], nonces[index] = tx_hash, plan.nonce + offset
    else:
        raise NonceDisplaced(f"{action}: other senders using {account.address} kept taking these transactions' "
                             "nonces; what was not mined was not applied, retry later")
    results = []
    for index, (call, receipt) in enumerate(zip(calls, mined, strict=True)):
        if receipt["status"] != 1:
            at = Call(call.contract, call.name, call.args, int(receipt["blockNumber"]) - 1)
            failure = rpc_batch(chain, [call_request(at, account.address)])[0]
            if isinstance(failure, RpcFailure):
                raise failure.error(action=action)
            raise TransactionReverted(f"{action} failed: transaction {receipt['transactionHash'].to_0x_hex()} reverted")
        receipt = chain.confirm(receipt, action=action, sender=account.address,
                                nonce=None if nonces is None else nonces[index])
        results.append(TxResult(receipt["transactionHash"].to_0x_hex(), int(receipt["blockNumber"]),
                                int(receipt["gasUsed"]), tuple(receipt["logs"])))
    return results


class _Displaced(Exception):
    def __init__(self, indexes: list[int]) -> None:
        super().__init__(indexes)
        self.indexes = indexes


def _await_receipts(chain: ChainClient, hashes: list[str], *, action: str, sender: str,
                    nonces: list[int] | None, known: dict[str, Any]) -> list[Any]:
    receipts: dict[str, Any] = {h: known[h] for h in hashes if h in known}
    deadline = time.monotonic() + chain.timeout
    displaced = Displacement()
    while len(receipts) < len(hashes):
        missing = [h for h in hashes if h not in receipts]
        requests: list[tuple[str, list[Any]]] = [("eth_getTransactionReceipt", [h]) for h in missing]
        if nonces is not None:
            requests.append(("eth_getTransactionCount", [sender, "latest"]))
        answers = rpc_batch(chain, requests)
        for tx_hash, answer in zip(missing, answers, strict=False):
            if isinstance(answer, dict):
                receipts[tx_hash] = receipt_formatter(answer)
        if len(receipts) == len(hashes):
            return [receipts[h] for h in hashes]
        if nonces is not None:
            waiting = [i for i, h in enumerate(hashes) if h not in receipts]
            lowest = min(nonces[i] for i in waiting)
            if displaced.seen(None, answers[-1], lowest):
                raise _Displaced([i for i in waiting if nonces[i] < int(answers[-1], 16)])
        if time.monotonic() >= deadline:
            raise ChainUnavailable(
                f"{action}: {len(hashes) - len(receipts)} of {len(hashes)} transactions were not mined within "
                f"{chain.timeout:.0f}s (first: {missing[0]}); check that the node is producing blocks"
            )
        time.sleep(_POLL_SECONDS)
    return [receipts[h] for h in hashes]


def sender_lock(chain: ChainClient, account: LocalAccount) -> Any:
    """The lock `ChainClient.transact` holds per sender while it picks a nonce."""
    return chain.sender_lock(account.address)
