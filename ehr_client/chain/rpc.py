"""One JSON-RPC layer for every chain call: several nodes with failover, and one deadline.

web3's HTTPProvider retries a failed request five times with back-off, each attempt with the full
timeout: a hung node blocked a call for ~152 s where 30 s were configured. Here web3's retries are
off; `ChainClient.rpc` owns the loop: each attempt gets what is left of the call's deadline (at
most `request_timeout`), a node that does not answer is left for the next one in the list, and when
the deadline passes the caller gets `ChainUnavailable` naming the nodes it tried.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from eth_typing import URI
from web3 import HTTPProvider

from ehr_client.errors import ConfigError


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
