"""A front for a real custodian that passes everything through and counts the requests it saw per path:
what the portal asked of the custodian on an attacker's behalf."""

from __future__ import annotations

import threading
from collections import Counter

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ehr_client.custodian.server import bind, url_of


class CountingFront:
    def __init__(self, behind: str) -> None:
        self.behind = behind
        self.seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        app = Starlette(routes=[Route("/{path:path}", self.forward, methods=["GET", "POST"])])
        self._sock = bind("127.0.0.1", 0)
        self.url = url_of(self._sock)
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    async def forward(self, request: Request) -> Response:
        with self._lock:
            self.seen[request.url.path] += 1
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.request(request.method, self.behind + request.url.path, content=await request.body(),
                                          headers={"Content-Type": "application/json"})
        return Response(answer.content, status_code=answer.status_code, media_type="application/json")

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
