"""The portal's HTTP app: the built page, and an API that serves ciphertext, chain reads and
relaying, never keys or plaintext.

    GET  /api/config                  chain id, contracts, ABIs, the consent EIP-712 domain and types
    POST /api/rpc                     JSON-RPC pass-through: chain reads and eth_sendRawTransaction only
    GET  /api/accounts/{address}      registration and current X25519 key of an account
    GET  /api/records/{patient}       the patient's record versions (verified listing; skipped ones said)
    GET  /api/blobs/{cid}             stored ciphertext, size-limited
    GET  /api/batched/{record}        a batched record's proof, as the wallet sends it to tombstone or amend it
    POST /api/keyshares               store a key share made in the browser (sealed keys only; signed by its patient)
    POST /api/relay                   a signed grant or revocation, checked, then sent by the relayer
    GET  /api/grants/{patient}        grants in force, break-glass pending or active
    GET  /api/timeline/{patient}      the access timeline with the monitor's alerts
    GET  /api/timeline/{patient}/fhir the same as a FHIR R4 Bundle of AuditEvent and Consent resources
    POST /api/packages                store a record package the browser wrote (key rotation; signed by its patient)
    POST /api/rotated/{record}        unpin a version the patient rotated away (signed by the patient)
    POST /api/erase/{record}          once the chain shows a record tombstoned: re-issue the key shares stored here
                                      without its keys, then unpin its ciphertext
    GET  /api/custodians              the key custodians (verified on chain), threshold, their EIP-712 domain
    POST /api/custodians/{address}/{deposit|destroy|audit}
                                      a wallet-signed custodian request, checked, forwarded unchanged

Every refusal is JSON `{"error": {"type": ..., "message": ...}}` with an HTTP status that fits.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from eth_utils import is_address, to_checksum_address

from ehr_client._json import load_untrusted
from ehr_client.chain.eip712 import Domain, GrantMessage
from ehr_client.client import EHRClient, SignedConsent
from ehr_client.client.model import hex_id
from ehr_client.errors import (
    AccessDenied,
    AlreadyRelayed,
    BlobNotFound,
    ChainUnavailable,
    ConfigError,
    DecryptionError,
    EHRError,
    IntegrityError,
    InvalidRecord,
    KeyNotFound,
    RecordErased,
    RecordNotFound,
    StorageUnavailable,
    TransactionReverted,
)
from ehr_client.keyshare import KeyShare
from ehr_client.custodian.errors import CustodianRefused, CustodianUnavailable
from ehr_client.portal import facts
from ehr_client.portal.custodians import MAX_CUSTODIAN_BODY, CustodianDirectory
from ehr_client.portal.errors import (
    MethodRefused,
    NoRelayer,
    RequestTooLarge,
    TooManyRequests,
    UnknownCustodian,
    UnsupportedContentType,
    UntrustedHost,
)
from ehr_client.portal.relay_limits import RelayLimits
from ehr_client.portal.rpc import RpcForwarder, parse_request
from ehr_client.portal.store_limits import StoreLimits
from ehr_client.portal.signed import check_signed
from ehr_client.package import parse_header
from ehr_client.storage.cid import cid_to_bytes, parse_cid

log = logging.getLogger("ehr_client.portal")

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
MAX_BLOB = 32 * 1024 * 1024
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
MAX_KEY_SHARE = 1024 * 1024
MAX_RELAY_BODY = 64 * 1024

_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (MethodRefused, 403), (RequestTooLarge, 413), (TooManyRequests, 429), (UnsupportedContentType, 415), (UntrustedHost, 421), (NoRelayer, 503), (UnknownCustodian, 404),
    (CustodianUnavailable, 503), (AccessDenied, 403),
    (BlobNotFound, 404), (RecordNotFound, 404), (KeyNotFound, 404), (RecordErased, 410),
    (IntegrityError, 422), (ChainUnavailable, 503), (StorageUnavailable, 503), (TransactionReverted, 409),
    (InvalidRecord, 400), (ConfigError, 500), (EHRError, 400),
)


def error_response(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)


def status_of(exc: Exception) -> int:
    return next(code for cls, code in _STATUS if isinstance(exc, cls))


@dataclass
class Clients:
    reader: EHRClient
    """A client whose identity is throwaway: chain facts and stored ciphertext only."""
    relayer: EHRClient | None
    """The wallet that pays for patients' signed consent, if this portal relays."""


@dataclass
class PortalServices:
    """What one portal serves from. `connect` builds the chain clients; it runs on first use and
    again after a failure, so a portal started while its chain node is down serves the page (which
    says the chain is down) and recovers when the node is back."""

    connect: Callable[[], Clients]
    rpc_url: str
    static_dir: Path
    state_dir: Path
    network: str
    relays: bool = False
    max_blob: int = MAX_BLOB
    hosts: tuple[str, ...] = LOOPBACK_NAMES
    """Host names the portal answers to (the Host header, without port): loopback names and --host."""
    custodians: CustodianDirectory = field(default_factory=lambda: CustodianDirectory((), 2))
    """The key custodians the page reaches through this portal (none: no audited release)."""
    _clients: Clients | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def clients(self) -> Clients:
        with self._lock:
            if self._clients is None:
                self._clients = self.connect()
            return self._clients

    @property
    def reader(self) -> EHRClient:
        return self.clients().reader

    @property
    def relayer(self) -> EHRClient | None:
        return self.clients().relayer


def host_name(header: str) -> str:
    """The Host header without its port (an IPv6 literal keeps its brackets)."""
    if header.startswith("["):
        return header[: header.find("]") + 1].lower()
    return header.rsplit(":", 1)[0].lower()


async def read_body(request: Request, limit: int, content_type: str) -> bytes:
    """The request body of `content_type`, refused as soon as it passes `limit` (never buffered beyond it)."""
    given = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if given != content_type:
        raise UnsupportedContentType(f"send this request as {content_type} (it came as {given or 'nothing'})")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"this request is limited to {limit // 1024} KiB")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestTooLarge(f"this request is limited to {limit // 1024} KiB")
    return bytes(body)


def create_app(services: PortalServices, *, on_ready: Callable[[], None] | None = None) -> FastAPI:
    """The portal's app; `on_ready` runs once it serves (the socket is already listening)."""
    forwarder = RpcForwarder(services.rpc_url)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            forwarder.close()
            services.custodians.close()

    app = FastAPI(title="EHR patient portal", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    audits: list[facts.AuditView] = []
    domain_cache: list[Domain] = []

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if host_name(request.headers.get("host", "")) not in services.hosts:
            response: Response = error_response(
                421, "UntrustedHost", "this portal answers only at its own address (e.g. http://127.0.0.1:PORT); "
                "open it there")
        else:
            try:
                response = await call_next(request)
            except Exception:  # still a typed answer with the security headers, never a traceback
                log.exception("portal: unexpected error on %s", request.url.path)
                response = error_response(500, "InternalError", "the portal hit an unexpected error; see its log")
        for name, value in SECURITY_HEADERS.items():
            response.headers[name] = value
        if request.url.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(EHRError)
    async def ehr_error(request: Request, exc: EHRError) -> JSONResponse:
        return error_response(status_of(exc), type(exc).__name__, str(exc))

    @app.exception_handler(CustodianRefused)
    async def custodian_refused(request: Request, exc: CustodianRefused) -> JSONResponse:
        status = {"malformed": 400, "too-large": 413, "rate-limited": 429}.get(exc.reason, 403)
        return JSONResponse({"error": {"type": "CustodianRefused", "reason": exc.reason, "custodian": exc.custodian,
                                       "message": str(exc)}}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, "InvalidRequest", "the request is malformed; see the API list in ehr_client/portal/app.py")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "NotFound" if exc.status_code == 404 else "HTTPError"
        return error_response(exc.status_code, kind, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("portal: unexpected error on %s", request.url.path)
        return error_response(500, "InternalError", "the portal hit an unexpected error; see its log")

    relay_limits = RelayLimits()
    store_limits = StoreLimits()
    share_locks: dict[str, threading.Lock] = {}
    share_locks_guard = threading.Lock()

    def shares_lock(patient: str) -> threading.Lock:
        """One patient's key shares are checked, stored and re-issued one request at a time."""
        with share_locks_guard:
            return share_locks.setdefault(to_checksum_address(patient), threading.Lock())

    def audit() -> facts.AuditView:
        if not audits:
            audits.append(facts.AuditView(services.reader, services.state_dir / "audit"))
        return audits[0]

    def domain() -> Domain:
        if not domain_cache:
            domain_cache.append(services.reader.consent_domain())
        return domain_cache[0]

    @app.get("/api/config")
    def get_config() -> dict[str, Any]:
        relayer = services.relayer.address if services.relayer is not None else None
        return facts.config(services.reader, domain(), relayer=relayer, network=services.network)

    @app.post("/api/rpc")
    async def rpc(request: Request) -> JSONResponse:
        checked = parse_request(await read_body(request, 256 * 1024, "application/json"))
        return JSONResponse(await run_in_threadpool(forwarder.forward, checked))

    @app.get("/api/accounts/{account}")
    def account(account: str) -> dict[str, Any]:
        return facts.encryption_key(services.reader, _address(account))

    @app.get("/api/records/{patient}")
    def records(patient: str) -> dict[str, Any]:
        return facts.records(services.reader, _address(patient))

    @app.get("/api/blobs/{cid}")
    def blob(cid: str) -> Response:
        parsed = parse_cid(cid)
        size = services.reader.store.size(parsed)
        if size > services.max_blob:
            raise RequestTooLarge(f"this blob is {size} bytes; the portal serves blobs up to "
                                  f"{services.max_blob} bytes (read it with `ehr record get`)")
        try:
            data = services.reader.store.get(parsed)
        except IntegrityError:
            raise IntegrityError("the stored copy of this data is damaged (it does not match its content address), so "
                                 "it was not used and nothing was decrypted; the portal's operator restores it from "
                                 "another replica (`ehr storage` checks and repairs)") from None
        return Response(data, media_type="application/octet-stream",
                        headers={"Cache-Control": "private, max-age=31536000, immutable"})

    def signed_by(request: Request, action: str, subject: bytes, signer: str) -> None:
        deployment = services.reader.chain.deployment
        check_signed(request.headers, chain_id=deployment.chain_id, registry=deployment.address("RecordRegistry"),
                     action=action, subject=subject, signer=signer)

    @app.post("/api/keyshares")
    async def key_share(request: Request) -> dict[str, Any]:
        body = await read_body(request, MAX_KEY_SHARE, "application/octet-stream")
        share = KeyShare.from_bytes(body)  # only key shares: sealed keys, never anything else
        signed_by(request, "store-key-share", hashlib.sha256(body).digest(), share.patient)
        await run_in_threadpool(store_limits.check, services.reader, share.patient, len(body))
        cid = await run_in_threadpool(_store_share, share)
        return {"cid": cid, "patient": share.patient, "grantee": share.grantee, "entries": len(share.entries)}

    def _store_share(share: KeyShare) -> str:
        # Checked, stored as the format writes it (fields the format does not have are not kept) and
        # logged under its patient before its CID is answered, all under the lock erasure re-issues
        # shares under: an erasure either sees this share in the log, or this check sees its tombstone.
        with shares_lock(share.patient):
            facts.check_share_under_grant(services.reader, share)
            cid = services.reader.store.put(share.to_bytes())
            facts.share_log(services.state_dir, share.patient).add(cid)
        return str(cid)

    @app.post("/api/packages")
    async def package(request: Request) -> dict[str, Any]:
        body = await read_body(request, services.max_blob, "application/octet-stream")
        try:
            header, _ = parse_header(body)  # only record packages bound to a record: ciphertext, never plaintext
        except DecryptionError:
            header = None
        if header is None or header.binding is None:
            raise InvalidRecord("only record packages (a bound header and an envelope, docs/FORMAT.md) are stored here")
        # A header can be made up: only the patient it names may store it, as its author (a key
        # rotation of theirs), within what the portal keeps for one patient.
        patient = to_checksum_address(header.binding.patient)
        if to_checksum_address(header.binding.author) != patient:
            raise InvalidRecord("the portal stores packages a patient wrote (key rotation): the header's author "
                                "must be its patient")
        signed_by(request, "store-package", hashlib.sha256(body).digest(), patient)
        await run_in_threadpool(store_limits.check, services.reader, patient, len(body))
        cid = await run_in_threadpool(services.reader.store.put, body)
        return {"cid": cid, "cidBytes": "0x" + cid_to_bytes(cid).hex(), "contentHash": "0x" + hashlib.sha256(body).hexdigest()}

    @app.post("/api/relay")
    async def relay(request: Request) -> dict[str, Any]:
        body = await read_body(request, MAX_RELAY_BODY, "application/json")
        try:
            doc = load_untrusted(body, max_depth=8, max_bytes=MAX_RELAY_BODY)
        except ValueError:
            raise InvalidRecord("send {\"typedData\": ..., \"signature\": \"0x…\", \"keyShare\": CID or null}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("signature"), str):
            raise InvalidRecord("send {\"typedData\": ..., \"signature\": \"0x…\", \"keyShare\": CID or null}")
        signed = SignedConsent.from_parts(doc.get("typedData"), doc["signature"], doc.get("keyShare"))
        return await run_in_threadpool(_relay, signed)

    def _relay(signed: SignedConsent) -> dict[str, Any]:
        relayer = services.relayer
        if relayer is None:
            raise NoRelayer("this portal runs without a relayer (start it with `ehr --wallet RELAYER portal "
                            "--relayer`); send the transaction from your own wallet instead")
        message = signed.message
        grant = isinstance(message, GrantMessage)
        relayer.verify_consent(signed)  # a forged or altered consent is refused as such, before any limit
        if grant and signed.key_share is not None and not services.reader.store.has(parse_cid(signed.key_share)):
            raise InvalidRecord(f"key share {signed.key_share} is not in the portal's store; upload it first")
        stamp = relay_limits.check(services.reader, message)
        try:
            tx = relayer.relay_grant(signed) if grant else relayer.relay_revoke(signed)
        except AlreadyRelayed as exc:
            relay_limits.release(message.patient, stamp)
            return {"relayed": "grant" if grant else "revocation", "alreadyRelayed": True, "note": str(exc),
                    "tx": None, "relayer": relayer.address, "keyShare": signed.key_share}
        except BaseException:
            relay_limits.release(message.patient, stamp)
            raise
        return {"relayed": "grant" if grant else "revocation", "alreadyRelayed": False,
                "tx": {"hash": tx.tx_hash, "block": tx.block_number, "gasUsed": tx.gas_used},
                "relayer": relayer.address, "patient": message.patient, "grantee": message.grantee,
                "keyShare": signed.key_share if grant else None}

    @app.get("/api/grants/{patient}")
    def grants(patient: str) -> dict[str, Any]:
        return audit().grants(_address(patient))

    @app.get("/api/timeline/{patient}")
    def timeline(patient: str) -> dict[str, Any]:
        return audit().timeline(_address(patient))

    @app.get("/api/timeline/{patient}/fhir")
    def timeline_fhir(patient: str) -> dict[str, Any]:
        return audit().fhir_export(_address(patient))

    @app.get("/api/batched/{record}")
    def batched(record: str) -> dict[str, Any]:
        return facts.batched_record(services.reader, _record_id(record))

    @app.get("/api/versions/{record}")
    def record_versions(record: str) -> dict[str, Any]:
        return facts.record_versions(services.reader, _record_id(record))

    @app.post("/api/rotated/{record}")
    def rotated(request: Request, record: str) -> dict[str, Any]:
        old = facts.rotated_away(services.reader, _record_id(record))
        # The chain cannot tell a rotation from a correction the patient wrote (whose old version stays
        # as history): only the patient's signature says this version was rotated away.
        signed_by(request, "unpin-rotated", old.record_id, old.patient)
        unpinned, kept = facts.unpin_erased(services.reader, [old])
        return {"recordId": facts.record_json(old)["recordId"], "unpinned": unpinned, "kept": kept}

    @app.post("/api/erase/{record}")
    def erase(record: str) -> dict[str, Any]:
        versions = facts.erasable(services.reader, _record_id(record))
        if not versions:
            raise AccessDenied("the chain does not show this record and all its earlier versions tombstoned; "
                               "the patient tombstones them first (from the wallet), then the portal unpins them")
        # Unpinned first: damage in a share log must not keep the ciphertext. A version that does not
        # verify has no bytes the portal can tell are its own; its key is still dropped from shares.
        unpinned, kept = facts.unpin_erased(services.reader, [v.info for v in versions if v.info is not None])
        kept += [{"cid": "", "reason": f"version {hex_id(v.record_id)} does not verify ({v.problem}); nothing of it "
                                       "was unpinned"} for v in versions if v.info is None]
        with shares_lock(versions[0].patient):
            reissued = facts.reissue_shares_without(services.reader, services.state_dir, versions)
        return {"recordIds": [hex_id(v.record_id) for v in versions], "unpinned": unpinned, "kept": kept,
                "reissuedShares": reissued}

    @app.get("/api/custodians")
    def custodians() -> dict[str, Any]:
        return services.custodians.listing(services.reader.chain)

    @app.post("/api/custodians/{address}/{action}")
    async def to_custodian(request: Request, address: str, action: str) -> JSONResponse:
        body = await read_body(request, MAX_CUSTODIAN_BODY, "application/json")
        answer = await run_in_threadpool(services.custodians.forward, services.reader.chain, address, action, body)
        return JSONResponse(answer.body, status_code=answer.status)

    if services.static_dir.is_dir():
        app.mount("/", StaticFiles(directory=services.static_dir, html=True), name="portal")
    return app


def _address(value: str) -> str:
    if not is_address(value):
        raise InvalidRecord(f"{value[:50]!r} is not an address (0x and 40 hex digits)")
    return str(to_checksum_address(value))


def _record_id(value: str) -> bytes:
    text = value.removeprefix("0x")
    if len(text) != 64 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise InvalidRecord(f"{value[:80]!r} is not a record id (0x and 64 hex digits)")
    return bytes.fromhex(text)
