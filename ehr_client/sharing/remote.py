"""Talking to custodians over HTTP, and knowing which ones to believe.

`CustodianClient` speaks to one URL. `CustodianSet.connect` asks each URL who it is and keeps it
only if the chain agrees: the address is an active key custodian and the X25519 key it reports
is the one it published. What is sealed to a custodian is sealed to its on-chain key, so a wrong
URL can refuse service but never learn a fragment.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from ehr_client._json import load_untrusted
from ehr_client.chain.client import ChainClient
from ehr_client.chain.types import KeyType
from ehr_client.custodian import messages
from ehr_client.custodian.checks import KEY_CUSTODIAN_ROLE
from ehr_client.custodian.core import MAX_DEPOSIT, fragments_digest
from ehr_client.custodian.errors import CustodianRefused, CustodianUnavailable
from ehr_client.custodian.messages import CustodianDomain
from ehr_client.errors import SignatureError, TransactionReverted

log = logging.getLogger("ehr_client.sharing")


@dataclass(frozen=True)
class CustodianInfo:
    url: str
    address: str
    x25519_version: int
    x25519_public: bytes


@dataclass(frozen=True)
class Session:
    token: str
    expires_at: int


@dataclass(frozen=True)
class ErasureReceipt:
    """A custodian's signed statement that it destroyed the record's fragments."""

    custodian: str
    patient: str
    record_id: bytes
    destroyed: int
    remaining: int
    erased_at: int
    message: dict[str, Any] = field(repr=False)
    signature: str = field(repr=False)

    def signer(self, domain: CustodianDomain) -> str:
        """The address that signed this receipt (recovered, not read from the receipt)."""
        return messages.recover(domain, "ErasureReceipt", messages.normalize("ErasureReceipt", self.message),
                                self.signature)

    def verify(self, domain: CustodianDomain) -> None:
        """Raises SignatureError unless the named custodian signed exactly this receipt."""
        try:
            signer = self.signer(domain)
        except CustodianRefused:
            signer = None
        if signer != self.custodian:
            raise SignatureError(f"the erasure receipt is not signed by custodian {self.custodian}")

    def to_json(self) -> dict[str, Any]:
        return {"message": self.message, "signature": self.signature}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ErasureReceipt:
        try:
            m = messages.normalize("ErasureReceipt", dict(doc["message"]))
            return cls(m["custodian"], m["patient"], bytes.fromhex(m["recordId"][2:]), m["destroyed"], m["remaining"],
                       m["erasedAt"], dict(doc["message"]), str(doc["signature"]))
        except (KeyError, TypeError, CustodianRefused):
            raise SignatureError("not an erasure receipt (expected a signed ErasureReceipt message)") from None


@dataclass(frozen=True)
class CfragAnswer:
    cfrag: bytes
    threshold: int
    shares: int
    receiving_key: bytes
    delegating_key: bytes
    delegation: bytes


def _signed(account: LocalAccount, domain: CustodianDomain, kind: str, message: dict[str, Any],
            now: float | None) -> dict[str, Any]:
    full = {**message, "issuedAt": int(time.time() if now is None else now), "nonce": messages.new_nonce()}
    return {"message": full, "signature": messages.sign(account.key, domain, kind, full)}


MAX_RESPONSE_BYTES = 1 << 20


class CustodianClient:
    """One custodian endpoint. Network failures raise CustodianUnavailable; refusals CustodianRefused."""

    def __init__(self, url: str, domain: CustodianDomain, *, address: str | None = None, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.domain = domain
        self.address = address
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise CustodianUnavailable(
                f"custodian {self.address or self.url} is unreachable ({type(exc).__name__}); try again or use others"
            ) from None
        try:
            doc = load_untrusted(response.content, max_depth=8, max_bytes=MAX_RESPONSE_BYTES)
        except ValueError:  # too large, too deep or not JSON: nothing a custodian's answer can be
            doc = {}
        if response.status_code in (400, 403, 413, 429) and isinstance(doc, dict) and "reason" in doc:
            raise CustodianRefused(str(doc["reason"]), str(doc.get("message", "")), custodian=self.address or self.url)
        if response.status_code != 200:
            raise CustodianUnavailable(
                f"custodian {self.address or self.url} failed (HTTP {response.status_code}); try again or use others"
            )
        return doc

    def info(self) -> CustodianInfo:
        """Who answers at this URL, proven: the custodian signs a fresh challenge with the key of the
        address it names (anyone can copy an address and a public key from the chain).

        Raises:
            SignatureError: the answer names a custodian whose key did not sign the challenge.
        """
        challenge = "0x" + secrets.token_hex(32)
        doc = self._call("GET", f"/v1/info?challenge={challenge}")
        try:
            info = CustodianInfo(self.url, to_checksum_address(doc["custodian"]), int(doc["x25519Version"]),
                                 bytes.fromhex(str(doc["x25519PublicKey"]).removeprefix("0x")))
            signer = messages.recover(self.domain, "Identity", {"custodian": info.address, "challenge": challenge},
                                      str(doc.get("identity", "")))
        except (KeyError, TypeError, ValueError):
            raise CustodianUnavailable(f"{self.url} does not answer like a key custodian") from None
        except CustodianRefused:  # no signature, or not one
            signer = None
        if signer != info.address:
            raise SignatureError(f"{self.url} claims to be custodian {info.address} but does not prove it holds its "
                                 "key (no valid signature over this request's challenge); do not use it")
        return info

    def enroll(self, account: LocalAccount, *, now: float | None = None) -> str:
        body = _signed(account, self.domain, "Enroll", {"custodian": self._to(), "grantee": account.address}, now)
        return str(self._call("POST", "/v1/enroll", body)["provisioningUri"])

    def open_session(self, account: LocalAccount, code: str, *, now: float | None = None) -> Session:
        body = _signed(account, self.domain, "OpenSession", {"custodian": self._to(), "grantee": account.address}, now)
        doc = self._call("POST", "/v1/sessions", {**body, "code": code})
        return Session(str(doc["session"]), int(doc["expiresAt"]))

    def deposit(self, account: LocalAccount, grantee: str, items: list[dict[str, Any]], *,
                now: float | None = None) -> int:
        """Deposit `items` as one or more signed Deposits (`deposit_batches`); how many were stored.
        A failure partway leaves the earlier batches stored: depositing again replaces them."""
        stored = 0
        for batch in deposit_batches(items):
            message = {"custodian": self._to(), "patient": account.address,
                       "grantee": to_checksum_address(grantee), "fragments": fragments_digest(batch)}
            body = _signed(account, self.domain, "Deposit", message, now)
            stored += int(self._call("POST", "/v1/fragments", {**body, "fragments": batch})["stored"])
        return stored

    def request_cfrag(self, account: LocalAccount, record_id: bytes, access_tx: str, session: Session, *,
                      now: float | None = None) -> CfragAnswer:
        token = bytes.fromhex(session.token.removeprefix("0x"))
        message = {"custodian": self._to(), "grantee": account.address, "recordId": "0x" + record_id.hex(),
                   "accessTx": access_tx, "session": "0x" + hashlib.sha256(token).hexdigest()}
        body = _signed(account, self.domain, "KeyRequest", message, now)
        doc = self._call("POST", "/v1/cfrags", {**body, "session": session.token})
        try:
            return CfragAnswer(bytes.fromhex(doc["cfrag"][2:]), int(doc["threshold"]), int(doc["shares"]),
                               bytes.fromhex(doc["receivingKey"][2:]), bytes.fromhex(doc["delegatingKey"][2:]),
                               bytes.fromhex(doc["delegation"][2:]))
        except (KeyError, TypeError, ValueError):
            raise CustodianUnavailable(f"custodian {self.address or self.url} sent a malformed answer") from None

    def destroy(self, account: LocalAccount, record_id: bytes, *, now: float | None = None) -> ErasureReceipt:
        message = {"custodian": self._to(), "patient": account.address, "recordId": "0x" + record_id.hex()}
        doc = self._call("POST", "/v1/destroy", _signed(account, self.domain, "Destroy", message, now))
        return ErasureReceipt.from_json(doc)

    def audit(self, account: LocalAccount, *, now: float | None = None) -> list[dict[str, Any]]:
        message = {"custodian": self._to(), "patient": account.address}
        doc = self._call("POST", "/v1/audit", _signed(account, self.domain, "AuditQuery", message, now))
        return list(doc["releases"])

    def _to(self) -> str:
        if self.address is None:
            self.address = self.info().address
        return self.address


DEPOSIT_BATCH_BYTES = 48 * 1024
"""JSON bytes of fragments per signed Deposit: custodians take bodies up to `MAX_BODY` (64 KiB), and
the signature and message need the rest (the page splits the same way, portal/src/custodians.js)."""


def deposit_batches(items: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """`items` in order, cut into batches of at most `DEPOSIT_BATCH_BYTES` and `MAX_DEPOSIT` items."""
    batches: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for item in items:
        length = len(json.dumps(item)) + 2
        if current and (size + length > DEPOSIT_BATCH_BYTES or len(current) == MAX_DEPOSIT):
            batches.append(current)
            current, size = [], 0
        current.append(item)
        size += length
    if current:
        batches.append(current)
    return batches


@dataclass
class CustodianSet:
    """The custodians a client works with: verified on chain when they answered, by address."""

    chain: ChainClient
    domain: CustodianDomain
    clients: list[CustodianClient]
    infos: dict[str, CustodianInfo]
    claims: dict[str, str] = field(default_factory=dict)
    """The custodian address each URL proved it answers for, at its last answer."""

    @classmethod
    def connect(cls, chain: ChainClient, urls: Sequence[str], *, timeout: float = 5.0) -> CustodianSet:
        """Ask each URL who it is; keep what the chain confirms. Down custodians are kept (by URL)
        and asked again later; a URL whose answer the chain contradicts raises SignatureError."""
        domain = CustodianDomain(chain.chain_id, chain.consent.address)
        clients: list[CustodianClient] = []
        infos: dict[str, CustodianInfo] = {}
        for url in urls:
            client = CustodianClient(url, domain, timeout=timeout)
            clients.append(client)
            try:
                info = client.info()
            except CustodianUnavailable:
                continue
            if info.address in infos:
                raise SignatureError(f"{url} and {infos[info.address].url} both answer as custodian {info.address}; "
                                     "name one URL for it")
            verify_custodian(chain, info)
            client.address = info.address
            infos[info.address] = info
        return cls(chain, domain, clients, infos, {i.url: a for a, i in infos.items()})

    def refresh(self, client: CustodianClient) -> CustodianInfo:
        """Identify a custodian again and ask the chain again: the consortium may have suspended it,
        or it may have published another key, since it was last asked (its own answer may not say).
        One it contradicts is dropped and raises SignatureError."""
        try:
            info = client.info()
        except SignatureError:
            self.claims.pop(client.url, None)
            self.infos = {a: i for a, i in self.infos.items() if i.url != client.url}
            raise
        self.claims[client.url] = info.address
        twins = sorted(url for url, address in self.claims.items() if address == info.address and url != client.url)
        try:
            if twins:  # one of them relays the other's answers: which is which cannot be told, so neither is used
                raise SignatureError(f"{client.url} and {twins[0]} both answer as custodian {info.address}; neither "
                                     "is used until the configuration names one URL for it")
            verify_custodian(self.chain, info)
        except SignatureError:
            self.infos = {a: i for a, i in self.infos.items() if i.url != client.url and a != info.address}
            raise
        client.address = info.address
        self.infos[info.address] = info
        return info

    def reachable(self) -> list[tuple[CustodianClient, CustodianInfo]]:
        """Custodians that answer now, identified and verified now (one the chain no longer vouches
        for is left out and logged: it is never sealed to or asked)."""
        found = []
        for client in self.clients:
            try:
                info = self.refresh(client)
            except CustodianUnavailable:
                continue
            except SignatureError as exc:
                log.warning("custodian at %s not used: %s", client.url, exc)
                continue
            found.append((client, info))
        return found

    def close(self) -> None:
        for client in self.clients:
            client.close()


def verify_custodian(chain: ChainClient, info: CustodianInfo) -> None:
    """Raises SignatureError unless `info` names an active key custodian and its published X25519 key."""
    if not chain.call(chain.consortium.functions.hasActiveRole(info.address, KEY_CUSTODIAN_ROLE),
                      action="check custodian membership"):
        raise SignatureError(f"{info.url} claims to be {info.address}, which is not an active key custodian")
    try:
        version, key = chain.call(chain.keys.functions.currentKey(info.address, KeyType.X25519),
                                  action="look up custodian key")
    except TransactionReverted:
        raise SignatureError(f"custodian {info.address} has published no X25519 key") from None
    if bytes(key) != info.x25519_public or int(version) != info.x25519_version:
        raise SignatureError(f"{info.url} reports a key that {info.address} has not published; do not use it")
