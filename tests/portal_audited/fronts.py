"""Fronts for a real custodian, served from a thread of the test process: everything passes through
to the custodian behind except the one lie or the one count each front adds."""

from __future__ import annotations

import threading
from collections import Counter

import httpx
import uvicorn
from eth_account import Account
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ehr_client.custodian import messages
from ehr_client.custodian.server import bind, url_of


def target(request: Request) -> str:
    """The request's path and query, as the custodian behind is to see them (/v1/info carries a challenge)."""
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


class CustodianFront:
    """Passes every request through to the custodian at `behind`; subclasses change `answer`."""

    def __init__(self, behind: str) -> None:
        self.behind = behind
        app = Starlette(routes=[Route("/{path:path}", self.forward, methods=["GET", "POST"])])
        self._sock = bind("127.0.0.1", 0)
        self.url = url_of(self._sock)
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    async def forward(self, request: Request) -> Response:
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.request(request.method, self.behind + target(request), content=await request.body(),
                                          headers={"Content-Type": "application/json"})
        return await self.answer(request.url.path, answer)

    async def answer(self, path: str, answer: httpx.Response) -> Response:
        return Response(answer.content, status_code=answer.status_code, media_type="application/json")

    def start(self) -> None:
        self._thread.start()
        while not self._server.started:
            self._thread.join(0.05)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


class ResigningCustodian(CustodianFront):
    """Signs erasure receipts with a key of its own: the page must not call such a receipt verified."""

    def __init__(self, behind: str) -> None:
        super().__init__(behind)
        self.key = Account.create().key

    async def answer(self, path: str, answer: httpx.Response) -> Response:
        if path == "/v1/destroy" and answer.status_code == 200:
            doc = answer.json()
            info = (await httpx.AsyncClient(timeout=10).get(self.behind + "/v1/info")).json()
            domain = messages.CustodianDomain(int(info["chainId"]), info["consent"])
            doc["signature"] = messages.sign(bytes(self.key), domain, "ErasureReceipt", doc["message"])
            return JSONResponse(doc)
        return await super().answer(path, answer)


class CountingFront(CustodianFront):
    """Counts the requests it saw per path: what the portal asked of the custodian on someone's behalf."""

    def __init__(self, behind: str) -> None:
        super().__init__(behind)
        self.seen: Counter[str] = Counter()
        self._lock = threading.Lock()

    async def forward(self, request: Request) -> Response:
        with self._lock:
            self.seen[request.url.path] += 1
        return await super().forward(request)

    def count(self, path: str) -> int:
        with self._lock:
            return self.seen[path]
