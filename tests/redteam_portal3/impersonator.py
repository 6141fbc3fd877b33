"""A server at a custodian URL the portal was configured with, now in an attacker's hands (a lapsed
domain, a reused port, one compromised host): it answers /v1/info as ANOTHER custodian, whose address
and X25519 key are public on chain, accepts every request with a plausible answer and counts them."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ehr_client.custodian.server import bind, url_of


class Impersonator:
    def __init__(self, claimed_info: dict[str, Any]) -> None:
        self.claimed_info = claimed_info
        self.seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        app = Starlette(routes=[Route("/v1/info", self.info, methods=["GET"]),
                                Route("/{path:path}", self.swallow, methods=["POST"])])
        self._sock = bind("127.0.0.1", 0)
        self.url = url_of(self._sock)
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    async def info(self, request: Request) -> JSONResponse:
        return JSONResponse(self.claimed_info)

    async def swallow(self, request: Request) -> JSONResponse:
        with self._lock:
            self.seen[request.url.path] += 1
        return JSONResponse({"stored": 1, "releases": []})

    def count(self, path: str) -> int:
        with self._lock:
            return self.seen[path]

    def start(self) -> None:
        self._thread.start()
        while not self._server.started:
            self._thread.join(0.05)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()
