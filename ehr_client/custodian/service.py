"""The custodian's HTTP API (FastAPI). Every body is JSON; every refusal is a JSON error.

=======================  ====================================================================
POST /v1/enroll          grantee-signed Enroll -> {provisioningUri} (once per grantee)
POST /v1/sessions        grantee-signed OpenSession + TOTP code -> {session, expiresAt}
POST /v1/fragments       patient-signed Deposit + sealed key fragments -> {stored}
POST /v1/cfrags          grantee-signed KeyRequest + session -> {cfrag, threshold, ...}
POST /v1/destroy         patient-signed Destroy -> signed erasure receipt
POST /v1/audit           patient-signed AuditQuery -> {releases}
GET  /v1/info            the custodian's address, chain, published X25519 key
=======================  ====================================================================

Refusals are 403 {"reason", "message"}; malformed requests 400; chain unreachable 503; bodies
over 64 KiB 413 (never parsed); too many session attempts for one grantee, or too many refusals
of unsigned or badly signed requests from one client address, 429 (the latter without reading
the request). Only refusals of requests with a verified signature are stored.
A background thread follows the chain and destroys fragments of revoked grants and erased records.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from ehr_client.custodian.core import Custodian
from ehr_client.custodian.errors import CustodianRefused
from ehr_client.custodian.limits import MAX_BODY, BodyLimit, WindowCounter
from ehr_client.errors import ChainUnavailable, EHRError

log = logging.getLogger("ehr_client.custodian")


class Signed(BaseModel):
    message: dict[str, Any]
    signature: str = Field(max_length=200)


class SessionRequest(Signed):
    code: str = Field(max_length=16)


class DepositRequest(Signed):
    fragments: list[dict[str, Any]]


class ReleaseRequest(Signed):
    session: str = Field(max_length=100)


class Poller:
    """Calls `custodian.sweep()` every `interval` seconds until stopped; failures are logged and retried."""

    def __init__(self, custodian: Custodian, interval: float) -> None:
        self.custodian = custodian
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="custodian-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.custodian.sweep()
            except Exception as exc:  # the poller must outlive a flaky node; the next sweep retries
                log.warning("sweep failed (%s); retrying in %.0f s", type(exc).__name__, self.interval)
            self._stop.wait(self.interval)


def create_app(custodian: Custodian, *, poll_interval: float = 2.0,
               on_ready: Callable[[], None] | None = None) -> FastAPI:
    """The app for one custodian; its lifespan runs the revocation poller."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        poller = Poller(custodian, poll_interval)
        poller.start()
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            poller.stop()

    app = FastAPI(title="EHR key custodian", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.add_middleware(BodyLimit, limit=MAX_BODY)
    unsigned = WindowCounter(window=60.0)
    unsigned_limit = custodian.settings.unauthenticated_refusals_per_minute

    def client_of(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    @app.middleware("http")
    async def throttle_unsigned(request: Request, call_next: Callable[[Request], Any]) -> Response:
        if request.method == "POST" and unsigned.count(client_of(request)) >= unsigned_limit:
            return JSONResponse({"reason": "rate-limited", "message": "too many refused requests from this address; "
                                 "wait a minute"}, status_code=429)
        response: Response = await call_next(request)
        return response

    def count_unsigned(request: Request) -> None:
        unsigned.hit(client_of(request), limit=unsigned_limit)

    @app.exception_handler(CustodianRefused)
    async def refused(request: Request, exc: CustodianRefused) -> JSONResponse:
        if exc.signer is None:
            count_unsigned(request)
        status = {"malformed": 400, "rate-limited": 429}.get(exc.reason, 403)
        return JSONResponse({"reason": exc.reason, "message": exc.detail}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def malformed(request: Request, exc: RequestValidationError) -> JSONResponse:
        count_unsigned(request)
        return JSONResponse({"reason": "malformed", "message": "the request body does not have the expected fields"},
                            status_code=400)

    @app.exception_handler(ChainUnavailable)
    async def chain_down(_: Request, exc: ChainUnavailable) -> JSONResponse:
        return JSONResponse({"reason": "chain-unavailable", "message": "the custodian cannot reach the chain"},
                            status_code=503)

    @app.exception_handler(EHRError)
    async def failed(_: Request, exc: EHRError) -> JSONResponse:
        log.warning("request failed: %s", type(exc).__name__)
        return JSONResponse({"reason": "error", "message": "the custodian could not complete the request"},
                            status_code=500)

    @app.get("/v1/info")
    def info(challenge: str | None = None) -> dict[str, Any]:
        if challenge is None:
            return custodian.info()
        text = challenge.removeprefix("0x")
        if len(text) != 64 or any(c not in "0123456789abcdefABCDEF" for c in text):
            raise CustodianRefused("malformed", "a challenge is 32 bytes as 0x-hex")
        return custodian.info(bytes.fromhex(text))

    @app.post("/v1/enroll")
    def enroll(body: Signed) -> dict[str, Any]:
        return {"provisioningUri": custodian.enroll(body.message, body.signature)}

    @app.post("/v1/sessions")
    def open_session(body: SessionRequest) -> dict[str, Any]:
        token, expires = custodian.open_session(body.message, body.signature, body.code)
        return {"session": token, "expiresAt": expires}

    @app.post("/v1/fragments")
    def deposit(body: DepositRequest) -> dict[str, Any]:
        return {"stored": custodian.deposit(body.message, body.signature, body.fragments)}

    @app.post("/v1/cfrags")
    def release(body: ReleaseRequest) -> dict[str, Any]:
        return custodian.release(body.message, body.signature, body.session)

    @app.post("/v1/destroy")
    def destroy(body: Signed) -> dict[str, Any]:
        return custodian.destroy(body.message, body.signature)

    @app.post("/v1/audit")
    def audit(body: Signed) -> dict[str, Any]:
        return {"releases": custodian.audit(body.message, body.signature)}

    return app
