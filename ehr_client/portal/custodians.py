"""The key custodians behind the portal's own origin (the page may talk to no other origin).

`CustodianDirectory` knows the custodian URLs the portal was started with. It identifies each one
as `CustodianSet` does (the chain must confirm the address is an active key custodian and the
X25519 key it reports is the one it published) and lists them for the page. `forward` passes a
wallet-signed request to one of them unchanged and returns its answer: the portal never signs and
never holds a key (fragments arrive sealed to each custodian's on-chain key).

Before forwarding, the portal checks the request is signed by the account it names and is for the
custodian in the path. Custodians rate-limit refused unsigned requests per client address, and every
request through the portal comes from the portal's address: without this check, anyone could make
the custodians refuse every patient of this portal for a minute by sending them garbage.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from eth_utils import is_address, to_checksum_address

from ehr_client._json import load_untrusted
from ehr_client.chain.client import ChainClient
from ehr_client.custodian import messages
from ehr_client.custodian.core import MAX_DEPOSIT, fragments_digest
from ehr_client.custodian.errors import CustodianRefused, CustodianUnavailable
from ehr_client.custodian.limits import MAX_BODY
from ehr_client.custodian.messages import CustodianDomain
from ehr_client.errors import SignatureError
from ehr_client.portal.errors import UnknownCustodian
from ehr_client.sharing.remote import (
    MAX_RESPONSE_BYTES,
    CustodianClient,
    CustodianInfo,
    CustodianSet,
    verify_custodian,
)

log = logging.getLogger("ehr_client.portal")

MAX_CUSTODIAN_BODY = MAX_BODY
"""What a custodian takes (64 KiB): a larger body would only be refused there."""

ACTIONS: dict[str, tuple[str, str]] = {
    "deposit": ("Deposit", "/v1/fragments"),
    "destroy": ("Destroy", "/v1/destroy"),
    "audit": ("AuditQuery", "/v1/audit"),
}
SIGNED_KINDS = ("Deposit", "Destroy", "AuditQuery", "ErasureReceipt")
"""The EIP-712 types the page needs: what it signs, and the custodians' receipts it checks."""
REFRESH_INTERVAL = 10.0  # seconds between look-ups of every custodian caused by unknown addresses


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


@dataclass
class CustodianDirectory:
    """The custodians this portal forwards to, identified and verified on chain."""

    urls: tuple[str, ...]
    threshold: int
    timeout: float = 10.0
    _set: CustodianSet | None = field(default=None, repr=False)
    _rejected: dict[str, str] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _refreshed_for_unknown: float = field(default=float("-inf"), repr=False)

    def _custodians(self, chain: ChainClient) -> CustodianSet:
        with self._lock:
            if self._set is None:
                domain = CustodianDomain(chain.chain_id, chain.consent.address)
                clients = [CustodianClient(url, domain, timeout=self.timeout) for url in self.urls]
                self._set = CustodianSet(chain, domain, clients, {})
            return self._set

    def refresh(self, chain: ChainClient) -> tuple[list[CustodianInfo], list[str | None]]:
        """Ask every custodian who it is now: (verified ones, those that did not answer: their address
        when they answered once, else None).

        A URL whose answer the chain contradicts is left out (and logged), never used."""
        custodians = self._custodians(chain)
        found: list[CustodianInfo] = []
        down: list[str | None] = []
        for client in custodians.clients:
            try:
                found.append(custodians.refresh(client))
                self._rejected.pop(client.url, None)
            except CustodianUnavailable:
                known = custodians.infos.get(client.address or "")
                down.append(known.address if known is not None and known.url == client.url else None)
            except SignatureError as exc:
                if self._rejected.get(client.url) != str(exc):
                    log.warning("portal: custodian at %s not used: %s", client.url, exc)
                self._rejected[client.url] = str(exc)
                custodians.infos = {a: i for a, i in custodians.infos.items() if i.url != client.url}
        # A URL verified earlier in the loop loses its place when a later URL answers as the same custodian.
        twinned = [i for i in found if custodians.infos.get(i.address) != i]
        for info in twinned:
            self._rejected[info.url] = f"another URL answers as custodian {info.address}"
        return [i for i in found if i not in twinned], down

    def listing(self, chain: ChainClient) -> dict[str, Any]:
        found, down = self.refresh(chain)
        domain = self._custodians(chain).domain
        types = {"EIP712Domain": messages.typed_data(domain, "Deposit", {})["types"]["EIP712Domain"],
                 **{kind: messages.TYPES[kind] for kind in SIGNED_KINDS}}
        return {
            "configured": bool(self.urls),
            "threshold": self.threshold,
            "domain": domain.as_dict(),
            "types": types,
            "custodians": [{"address": i.address, "x25519Version": i.x25519_version,
                            "x25519PublicKey": "0x" + i.x25519_public.hex()} for i in found],
            "unreachable": len(down),
            "unreachableCustodians": [address for address in down if address is not None],
            "rejected": len(self._rejected),
        }

    def _url_of(self, chain: ChainClient, address: str) -> str:
        custodians = self._custodians(chain)
        info = custodians.infos.get(address)
        if info is None and self._may_refresh():  # maybe one that was down at the last listing
            self.refresh(chain)
            info = custodians.infos.get(address)
        if info is None:
            raise UnknownCustodian(f"{address} is not one of this portal's custodians; reload the page to see "
                                   "which custodians the portal works with")
        try:  # asked at every request: the consortium may have suspended it since the last listing
            verify_custodian(chain, info)
        except SignatureError as exc:
            custodians.infos.pop(address, None)
            raise UnknownCustodian(f"{address} is no longer a custodian this portal works with ({exc}); reload the "
                                   "page to see which custodians it works with") from None
        return info.url

    def _may_refresh(self) -> bool:
        """At most one look-up of every custodian per `REFRESH_INTERVAL` for addresses not known: a
        stranger naming random addresses must not make the portal call each custodian every time."""
        with self._lock:
            now = time.monotonic()
            if now - self._refreshed_for_unknown < REFRESH_INTERVAL:
                return False
            self._refreshed_for_unknown = now
            return True

    def forward(self, chain: ChainClient, address: str, action: str, body: bytes) -> Answer:
        """Check the signed request, send it unchanged to the custodian at `address`, return its answer.

        Raises:
            UnknownCustodian: no such action, or `address` is not a custodian of this portal.
            CustodianRefused: the request is malformed or not signed by the account it names
                (checked here), or the custodian refused it.
            CustodianUnavailable: the custodian did not answer.
        """
        if action not in ACTIONS:
            raise UnknownCustodian(f"custodians take {', '.join(ACTIONS)} through the portal, not {action[:20]!r}")
        if not is_address(address):
            raise UnknownCustodian(f"{address[:50]!r} is not an address (0x and 40 hex digits)")
        address = str(to_checksum_address(address))
        kind, path = ACTIONS[action]
        self._check(chain, address, kind, body)
        url = self._url_of(chain, address)
        try:
            response = httpx.post(url + path, content=body, headers={"Content-Type": "application/json"},
                                  timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise CustodianUnavailable(f"custodian {address} is unreachable ({type(exc).__name__}); try again "
                                       "later, or go on with the other custodians") from None
        try:
            doc = load_untrusted(response.content, max_depth=8, max_bytes=MAX_RESPONSE_BYTES)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise CustodianUnavailable(f"custodian {address} answered HTTP {response.status_code} with no JSON; try "
                                       "again later, or go on with the other custodians")
        if response.status_code == 200:
            return Answer(200, doc)
        if "reason" in doc and response.status_code in (400, 403, 413, 429):
            raise CustodianRefused(str(doc["reason"])[:40], str(doc.get("message", ""))[:300], custodian=address)
        raise CustodianUnavailable(f"custodian {address} failed (HTTP {response.status_code}); try again later, or "
                                   "go on with the other custodians")

    def _check(self, chain: ChainClient, address: str, kind: str, body: bytes) -> None:
        try:
            doc = load_untrusted(body, max_depth=8, max_bytes=MAX_CUSTODIAN_BODY)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("message"), dict) \
                or not isinstance(doc.get("signature"), str) or len(doc["signature"]) > 200:
            raise CustodianRefused("malformed", f"send {{\"message\": {kind}, \"signature\": \"0x…\"}} as JSON")
        clean = messages.check_signed(self._custodians(chain).domain, kind, doc["message"], doc["signature"])
        if clean["custodian"] != address:
            raise CustodianRefused("wrong-custodian", f"this {kind} is signed for custodian {clean['custodian']}, "
                                   f"not {address}; sign one for each custodian")
        # Every request reaches a custodian from this portal's one address, and a custodian counts the
        # bodies it cannot read against that address: one stranger's malformed bodies would lock every
        # patient out. So nothing the custodian would refuse as malformed leaves here.
        if kind == "Deposit":
            items = doc.get("fragments")
            if not isinstance(items, list) or not 0 < len(items) <= MAX_DEPOSIT \
                    or not all(isinstance(item, dict) for item in items) or fragments_digest(items) != clean["fragments"]:
                raise CustodianRefused("malformed", f"a deposit holds 1 to {MAX_DEPOSIT} fragments, as signed")

    def close(self) -> None:
        if self._set is not None:
            self._set.close()


__all__ = ["ACTIONS", "Answer", "CustodianDirectory", "MAX_CUSTODIAN_BODY"]
