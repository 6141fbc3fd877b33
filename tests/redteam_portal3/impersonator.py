"""A server at a custodian URL the portal was configured with, now in an attacker's hands (a lapsed
domain, a reused port, one compromised host): it answers /v1/info as ANOTHER custodian, whose address
and X25519 key are public on chain, accepts every request with a plausible answer and counts them."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.portal_audited.fronts import CustodianFront


class Impersonator(CustodianFront):
    def __init__(self, claimed_info: dict[str, Any]) -> None:
        super().__init__(behind="")  # forwards nothing: it answers everything itself
        self.claimed_info = claimed_info
        self.seen: Counter[str] = Counter()
        self._lock = threading.Lock()

    async def forward(self, request: Request) -> Response:
        if request.url.path == "/v1/info":
            return JSONResponse(self.claimed_info)
        with self._lock:
            self.seen[request.url.path] += 1
        return JSONResponse({"stored": 1, "releases": []})

    def count(self, path: str) -> int:
        with self._lock:
            return self.seen[path]
