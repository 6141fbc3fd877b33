"""A minimal JSON-RPC call with a deadline, for talking to the nodes this package starts."""

from __future__ import annotations

from typing import Any

import requests

from ehr_client.errors import ChainError, ChainUnavailable


class RpcRefused(ChainError):
    """The node answered the call with a JSON-RPC error."""


def rpc(url: str, method: str, *params: Any, timeout: float = 5.0) -> Any:
    """`method(*params)` on `url`; ChainUnavailable if the node does not answer within `timeout`."""
    try:
        with requests.Session() as session:
            session.trust_env = False  # the nodes are on loopback: never through a proxy the environment names
            response = session.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
                                    timeout=timeout)
            answer = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise ChainUnavailable(f"the node at {url} did not answer {method} ({type(exc).__name__}); "
                               "is it running? see its geth.log") from None
    if not isinstance(answer, dict):
        raise ChainUnavailable(f"the node at {url} sent a malformed answer to {method}")
    if "error" in answer:
        error = answer["error"] if isinstance(answer["error"], dict) else {}
        raise RpcRefused(f"{url} refused {method}: {error.get('message', answer['error'])}")
    return answer.get("result")
