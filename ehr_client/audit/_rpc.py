"""Raw JSON-RPC reads for the audit index, batched, without web3's per-item result formatting
(which costs about a millisecond per log or block). Results stay JSON: hex strings and dicts.
An unreachable node becomes ChainUnavailable; an error answer becomes ChainError."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import requests
from web3 import Web3

from ehr_client.errors import ChainError, ChainUnavailable

T = TypeVar("T")

BATCH_SIZE = 200


def guarded(rpc_url: str, request: Callable[[], T]) -> T:
    """Run one node request; an unreachable or timing-out node becomes ChainUnavailable."""
    try:
        return request()
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise ChainUnavailable(
            f"cannot reach the chain node at {rpc_url} ({type(exc).__name__}); start it or fix --rpc"
        ) from None


def quantity(value: Any) -> int:
    """A JSON-RPC quantity ("0x1a") or an int, as an int."""
    return int(value, 16) if isinstance(value, str) else int(value)


class RpcErrorAnswer(ChainError):
    """The node answered a request with a JSON-RPC error."""

    def __init__(self, method: str, error: Any) -> None:
        message = error.get("message") if isinstance(error, dict) else str(error)
        super().__init__(f"the chain node refused {method}: {message}")
        self.error = error


class Rpc:
    """Head, logs over many addresses, blocks, receipts and call replays of one node."""

    def __init__(self, w3: Web3, rpc_url: str) -> None:
        self.provider: Any = w3.provider
        self.rpc_url = rpc_url

    def request(self, method: str, params: list[Any]) -> Any:
        response = guarded(self.rpc_url, lambda: self.provider.make_request(method, params))
        if "error" in response:
            raise RpcErrorAnswer(method, response["error"])
        return response.get("result")

    def batch(self, method: str, param_lists: Sequence[list[Any]]) -> list[Any]:
        """`method` once per params list, in batches; results in order (None where the node has none)."""
        results: list[Any] = []
        for start in range(0, len(param_lists), BATCH_SIZE):
            part = [(method, params) for params in param_lists[start:start + BATCH_SIZE]]
            responses = guarded(self.rpc_url, lambda p=part: self.provider.make_batch_request(p))  # type: ignore[misc]
            if not isinstance(responses, list) or len(responses) != len(part):
                error = responses.get("error") if isinstance(responses, dict) else responses
                raise RpcErrorAnswer(method, error)
            for response in responses:
                if "error" in response:
                    raise RpcErrorAnswer(method, response["error"])
                results.append(response.get("result"))
        return results

    def block_number(self) -> int:
        return quantity(self.request("eth_blockNumber", []))

    def logs(self, addresses: Sequence[str], start: int, end: int) -> list[dict[str, Any]]:
        """Every log of `addresses` in blocks start..end in one eth_getLogs; a node that refuses a
        range as too large gets the two halves instead."""
        try:
            result = self.request("eth_getLogs", [{"fromBlock": hex(start), "toBlock": hex(end),
                                                   "address": list(addresses)}])
        except RpcErrorAnswer:
            if start >= end:
                raise
            middle = (start + end) // 2
            return self.logs(addresses, start, middle) + self.logs(addresses, middle + 1, end)
        return list(result or [])

    def blocks(self, numbers: Iterable[int], *, full: bool = False) -> dict[int, dict[str, Any] | None]:
        ordered = sorted(set(numbers))
        found = self.batch("eth_getBlockByNumber", [[hex(n), full] for n in ordered])
        return dict(zip(ordered, found, strict=True))

    def receipts(self, hashes: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        found = self.batch("eth_getTransactionReceipt", [[h] for h in hashes])
        return dict(zip(hashes, found, strict=True))

    def replay_revert(self, tx: dict[str, Any]) -> bytes | None:
        """Revert data of a failed transaction, replayed as a call on the state before its block.

        Earlier transactions of the same block are not applied, so on a chain that packs several
        transactions per block the reason may differ; None when the replay gives no revert data.
        """
        call = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "value": tx["value"], "gas": tx["gas"]}
        try:
            self.request("eth_call", [call, hex(quantity(tx["blockNumber"]) - 1)])
        except RpcErrorAnswer as exc:
            data = exc.error.get("data") if isinstance(exc.error, dict) else None
            if isinstance(data, dict):
                data = data.get("data")
            if isinstance(data, str) and data.startswith("0x"):
                return bytes.fromhex(data[2:])
        return None
