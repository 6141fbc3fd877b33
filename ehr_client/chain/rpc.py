"""One JSON-RPC layer for every chain call: several nodes with failover, and one deadline.

web3's HTTPProvider retries a failed request five times with back-off, each attempt with the full
timeout: a hung node blocked a call for ~152 s where 30 s were configured. Here web3's retries are
off; `ChainClient.rpc` owns the loop: each attempt gets what is left of the call's deadline (at
most `request_timeout`), a node that does not answer is left for the next one in the list, and when
the deadline passes the caller gets `ChainUnavailable` naming the nodes it tried.

Batches to a plain-http node that no proxy setting applies to (a local node, a node on the
consortium's network) go over a kept-alive `http.client` connection per thread: `requests` spends
about 0.4 ms of Python on each request (environment and proxy look-ups, adapters, hooks), more than
a loopback node takes to answer. Its failures are raised as the `requests` exceptions the failover
loop handles. Single requests, https and proxied nodes go through web3's `requests` session.
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import urlsplit

import requests
from eth_typing import URI
from web3 import HTTPProvider
from web3._utils.batching import sort_batch_response_by_response_ids
from web3.types import RPCEndpoint, RPCResponse

from ehr_client.errors import ConfigError

MAX_ANSWER_BYTES = 256 * 2**20
"""The largest JSON-RPC answer read: a bound against a hostile node, far above what this client asks for."""
_CHUNK = 64 * 1024
_LAST_READ = 0.05  # seconds a read may still wait once the deadline has passed
_DRIP_GRACE = 1.0  # seconds past the deadline after which a body still arriving is given up


def _read_within(response: http.client.HTTPResponse, sock: socket.socket, deadline: float) -> bytes:
    """The response body, read by the deadline (what is already buffered is always taken) and at
    most `MAX_ANSWER_BYTES`: a socket timeout bounds one read only, and a node can drip a body (or
    declare a huge one) a byte at a time."""
    chunks: list[bytes] = []
    size = 0
    while True:
        left = deadline - time.monotonic()
        if left < -_DRIP_GRACE:
            raise TimeoutError
        sock.settimeout(max(left, _LAST_READ))
        chunk = response.read1(_CHUNK)
        if not chunk:
            # read1 leaves a response read to its end open (read() closes it): the kept connection
            # would then send the next request and refuse to read its answer.
            response.close()
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise http.client.HTTPException(f"the answer is over {MAX_ANSWER_BYTES // 2**20} MiB")
        chunks.append(chunk)


def parse_urls(value: str | Sequence[str]) -> list[str]:
    """A list of node URLs from a list, or from one string with commas between URLs."""
    urls = [u.strip() for u in (value.split(",") if isinstance(value, str) else value) if u.strip()]
    if not urls:
        raise ConfigError("no chain node URL given; pass --rpc URL (several: URL1,URL2) or set EHR_RPC_URL")
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{url!r} is not an http(s) JSON-RPC URL; pass e.g. --rpc http://127.0.0.1:8545")
    return urls


class FailoverProvider(HTTPProvider):
    """An HTTPProvider over several nodes: `failover()` moves to the next; requests never retry."""

    def __init__(self, urls: Sequence[str], *, request_timeout: float) -> None:
        super().__init__(urls[0], request_kwargs={"timeout": request_timeout}, exception_retry_configuration=None)
        self.urls = list(urls)
        self.request_timeout = request_timeout
        self._index = 0
        self._lock = threading.Lock()
        self._budget = threading.local()
        self._connections = threading.local()
        self._direct = {url for url in self.urls if _reached_directly(url)}

    def set_budget(self, seconds: float | None) -> None:
        """The longest the next requests of this thread may wait (None: `request_timeout`)."""
        self._budget.seconds = seconds

    def get_request_kwargs(self) -> dict[str, Any]:  # type: ignore[override]  # web3 7 calls it as a mapping
        kwargs: dict[str, Any] = dict(super().get_request_kwargs())
        budget = getattr(self._budget, "seconds", None)
        if budget is not None:
            kwargs["timeout"] = max(0.05, min(float(kwargs.get("timeout", budget)), budget))
        return kwargs

    def failover(self, failed: str) -> None:
        """Move on from `failed` (if it is still the current node) to the next node in the list."""
        with self._lock:
            if self.endpoint_uri == failed and len(self.urls) > 1:
                self._index = (self._index + 1) % len(self.urls)
                self.endpoint_uri = URI(self.urls[self._index])

    def make_batch_request(  # type: ignore[override]  # same contract as web3's, typed loosely there
        self, batch_requests: list[tuple[RPCEndpoint, Any]]
    ) -> list[RPCResponse] | RPCResponse:
        """web3's `make_batch_request`, over this thread's kept-alive connection when the node is
        reached directly (see the module docstring)."""
        url = str(self.endpoint_uri)
        if url not in self._direct:
            return super().make_batch_request(batch_requests)
        response = self.decode_rpc_response(self._post(url, self.encode_batch_rpc_request(batch_requests)))
        if not isinstance(response, list):
            return response  # the node refused the whole batch with one error object
        return cast(list[RPCResponse], sort_batch_response_by_response_ids(response))

    def _post(self, url: str, body: bytes) -> bytes:
        timeout = float(self.get_request_kwargs().get("timeout", self.request_timeout))
        connection = self._connection(url)
        try:
            if connection.sock is None:
                connection.connect()
                # headers and body leave in two writes: without this the body waits for the node's ACK
                cast(socket.socket, connection.sock).setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock = cast(socket.socket, connection.sock)
            deadline = time.monotonic() + timeout
            sock.settimeout(timeout)
            connection.request("POST", urlsplit(url).path or "/", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            # The whole answer within the deadline and the size bound: a socket timeout bounds each
            # read only, and a node can drip a body (or declare a huge one) a byte at a time.
            answer = _read_within(response, sock, deadline)
        except TimeoutError as exc:
            connection.close()
            raise requests.Timeout(f"{url} did not answer within {timeout:.2f}s") from exc
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise requests.ConnectionError(f"{url}: {exc or type(exc).__name__}") from exc
        if response.will_close:
            connection.close()
        if response.status >= 400:
            raise requests.HTTPError(f"{response.status} {response.reason} from {url}")
        return answer

    def _connection(self, url: str) -> http.client.HTTPConnection:
        """This thread's connection to `url`; closed first when the node closed the kept one."""
        kept: dict[str, http.client.HTTPConnection] = self._connections.__dict__.setdefault("by_url", {})
        connection = kept.get(url)
        if connection is None:
            parts = urlsplit(url)
            connection = kept[url] = http.client.HTTPConnection(parts.hostname or "", parts.port or 80,
                                                                timeout=self.request_timeout)
        elif connection.sock is not None and _closed_by_peer(connection.sock):
            connection.close()
        return connection


def _reached_directly(url: str) -> bool:
    """Plain http with no proxy setting (HTTP_PROXY, NO_PROXY, ...) that would route it elsewhere."""
    return urlsplit(url).scheme == "http" and not requests.utils.get_environ_proxies(url)


def _closed_by_peer(sock: Any) -> bool:
    """An idle kept-alive socket that is readable has been closed by the node (or holds stray bytes):
    either way it must not carry the next request. Checked before sending, so nothing is sent twice."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
