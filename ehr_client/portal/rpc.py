"""The browser's only way to the chain: a JSON-RPC pass-through restricted to reads and raw
transactions, so the page never talks to another origin and never reaches a node's admin or
signing methods (`eth_sendTransaction`, `personal_*`, `anvil_*`, `debug_*`, `admin_*`)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from ehr_client._json import load_untrusted
from ehr_client.errors import ChainUnavailable, InvalidRecord
from ehr_client.portal.errors import MethodRefused, RequestTooLarge

READ_METHODS = frozenset({
    "eth_blockNumber", "eth_call", "eth_chainId", "eth_estimateGas", "eth_feeHistory", "eth_gasPrice",
    "eth_getBalance", "eth_getBlockByHash", "eth_getBlockByNumber", "eth_getCode", "eth_getLogs",
    "eth_getTransactionByHash", "eth_getTransactionCount", "eth_getTransactionReceipt",
    "eth_maxPriorityFeePerGas", "net_version",
})
ALLOWED_METHODS = READ_METHODS | {"eth_sendRawTransaction"}
MAX_BODY = 256 * 1024
MAX_BATCH = 20
MAX_LOG_BLOCKS = 50_000
MAX_CALL_GAS = 30_000_000


def _check_call(call: object) -> None:
    if not isinstance(call, dict) or call.get("jsonrpc") != "2.0" or not isinstance(call.get("method"), str):
        raise InvalidRecord("send a JSON-RPC 2.0 request: {\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": ..., \"params\": [...]}")
    method = call["method"]
    if method not in ALLOWED_METHODS:
        raise MethodRefused(f"the portal does not pass {method[:64]!r} to the chain; it passes chain reads "
                            f"({', '.join(sorted(READ_METHODS))}) and eth_sendRawTransaction only; "
                            "sign transactions in your wallet")
    params = call.get("params", [])
    if not isinstance(params, list):
        raise InvalidRecord("JSON-RPC params must be a list")
    if method == "eth_getLogs":
        _check_log_range(params)
    if method in ("eth_call", "eth_estimateGas"):
        _check_gas(params)


def _check_gas(params: list[Any]) -> None:
    """A call runs at most MAX_CALL_GAS: a node runs whatever code a call carries until its gas ends,
    so an unbounded `gas` would hold a core for hours (no `gas` lets the node apply its own cap)."""
    call = params[0] if params and isinstance(params[0], dict) else {}
    if "gas" in call and (_quantity(call["gas"]) or 0) > MAX_CALL_GAS:
        raise RequestTooLarge(f"a call through the portal may use at most {MAX_CALL_GAS:,} gas (a block's limit)")


def _quantity(value: object) -> int | None:
    """A JSON-RPC hex quantity; InvalidRecord when it is not one."""
    if not isinstance(value, str) or not value.startswith("0x") or len(value) > 66:
        raise InvalidRecord(f"{str(value)[:70]!r} is not a hex quantity (0x followed by hex digits)")
    try:
        return int(value, 16)
    except ValueError:
        raise InvalidRecord(f"{value!r} is not a hex quantity (0x followed by hex digits)") from None


def _block(value: object) -> int | None:
    if isinstance(value, str) and value.startswith("0x"):
        return _quantity(value)
    return None


def _check_log_range(params: list[Any]) -> None:
    """A log query spans at most MAX_LOG_BLOCKS numbered blocks (a node does the work, not us)."""
    query = params[0] if params and isinstance(params[0], dict) else {}
    start, end = _block(query.get("fromBlock")), _block(query.get("toBlock"))
    if "blockHash" in query:
        return
    if start is None or end is None or end - start > MAX_LOG_BLOCKS:
        raise RequestTooLarge(f"eth_getLogs must give numbered fromBlock and toBlock at most {MAX_LOG_BLOCKS} "
                              "blocks apart; page through the range")


def parse_request(body: bytes) -> object:
    """The checked JSON-RPC request (one call or a small batch).

    Raises:
        RequestTooLarge: body over MAX_BODY, batch over MAX_BATCH, log range too wide.
        InvalidRecord: not JSON-RPC 2.0.
        MethodRefused: a method outside ALLOWED_METHODS (a batch is refused whole).
    """
    if len(body) > MAX_BODY:
        raise RequestTooLarge(f"JSON-RPC requests are limited to {MAX_BODY // 1024} KiB")
    try:
        request = load_untrusted(body, max_depth=16, max_bytes=MAX_BODY)
    except ValueError:
        raise InvalidRecord("the request body is not JSON") from None
    calls = request if isinstance(request, list) else [request]
    if not calls or len(calls) > MAX_BATCH:
        raise RequestTooLarge(f"a JSON-RPC batch holds 1 to {MAX_BATCH} calls")
    for call in calls:
        _check_call(call)
    return request


class RpcForwarder:
    """Sends checked requests to the node and returns its answer untouched."""

    def __init__(self, rpc_url: str, *, timeout: float = 15.0) -> None:
        self.rpc_url = rpc_url
        self._client = httpx.Client(timeout=timeout)

    def forward(self, request: object) -> object:
        try:
            response = self._client.post(self.rpc_url, content=json.dumps(request),
                                         headers={"Content-Type": "application/json"})
            response.raise_for_status()
            answer: object = response.json()
        except (httpx.HTTPError, ValueError):
            raise ChainUnavailable(f"the chain node at {self.rpc_url} did not answer; check that it runs "
                                   "(`ehr node status`) and reload") from None
        return answer

    def close(self) -> None:
        self._client.close()
