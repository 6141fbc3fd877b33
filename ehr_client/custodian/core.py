"""A key custodian's decisions, independent of HTTP: enrol, open sessions, take deposits,
release re-encryption fragments, destroy fragments, answer audits, follow revocations.

Nothing a caller says is trusted: signers are recovered from EIP-712 signatures, and every
release is checked against the chain at the moment it is asked for (`ChainChecks`). Each
refusal is logged with its reason; each release with the on-chain access request it answers,
which can be answered only once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import umbral_pre

from ehr_client.chain.client import ChainClient
from ehr_client.keys import Identity
from ehr_client.crypto import x25519_public_key
from ehr_client.custodian import messages, totp
from ehr_client.custodian.checks import ChainChecks
from ehr_client.custodian.errors import CustodianRefused
from ehr_client.custodian.limits import WindowCounter
from ehr_client.custodian.messages import CustodianDomain
from ehr_client.custodian.seal import AtRestKey, fragment_associated_data, open_sealed
from ehr_client.custodian.store import CustodianStore, Fragment, Refusal, Release
from ehr_client.errors import ConfigError, DecryptionError, KeyNotFound
from ehr_client.package import UMBRAL_ERRORS

log = logging.getLogger("ehr_client.custodian")

MAX_SHARES = 255
MAX_DEPOSIT = 1000
MFA_FAILURES = 5
MFA_LOCKOUT = 300
_CURSOR = "poll_cursor"


@dataclass(frozen=True)
class CustodianSettings:
    """Limits a custodian enforces (seconds unless said otherwise)."""

    request_ttl: int = 120
    session_ttl: int = 900
    max_request_age: int = 300
    max_request_blocks: int = 256
    session_attempts_per_minute: int = 10
    """Per grantee (by checksummed address), whatever the outcome: bounds TOTP guessing even
    before the lockout, and what a stolen wallet key can make the custodian write."""
    unauthenticated_refusals_per_minute: int = 120
    """Per client address: past it, the server answers 429 without reading the request."""


def fragments_digest(items: list[dict[str, Any]]) -> str:
    """What a Deposit signature covers: sha256 of the canonical JSON of the deposited items."""
    canonical = json.dumps(items, sort_keys=True, separators=(",", ":")).encode()
    return "0x" + hashlib.sha256(canonical).hexdigest()


def _hex(value: str, *, name: str, size: int | None = None) -> bytes:
    try:
        raw = bytes.fromhex(value.removeprefix("0x"))
    except (ValueError, AttributeError):
        raise CustodianRefused("malformed", f"{name} is not hex") from None
    if size is not None and len(raw) != size:
        raise CustodianRefused("malformed", f"{name} must be {size} bytes")
    return raw


class Custodian:
    """One custodian: its identity (wallet + X25519 keys), the chain, and its SQLite store."""

    def __init__(
        self,
        identity: Identity,
        chain: ChainClient,
        store: CustodianStore,
        *,
        settings: CustodianSettings = CustodianSettings(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity = identity
        self.chain = chain
        self.store = store
        self.settings = settings
        self.clock = clock
        self.domain = CustodianDomain(chain.chain_id, chain.consent.address)
        self.checks = ChainChecks(chain, max_request_age=settings.max_request_age,
                                  max_request_blocks=settings.max_request_blocks, clock=clock)
        # TOTP secrets are sealed under a key derived from one X25519 key version, recorded with
        # each secret: rotating the custodian's key (a new current version) leaves them readable.
        self._totp_keys = {v: AtRestKey(secret, purpose=b"totp") for v, secret in identity.x25519.items()}
        self._session_attempts = WindowCounter(window=60.0)
        self._unrecorded = Counter[str]()
        self._unrecorded_lock = threading.Lock()

    @property
    def address(self) -> str:
        return self.identity.address

    def _now(self) -> int:
        return int(self.clock())

    def check_ready(self) -> tuple[int, bytes]:
        """Refuse to serve unless this wallet is an active key custodian whose current X25519 key
        is published; returns (on-chain version, public key).

        Raises:
            ConfigError: with the command that fixes it.
        """
        if not self.checks.is_custodian(self.address):
            raise ConfigError(
                f"{self.address} is not an active key custodian (Consortium role 5); the governors must admit it first"
            )
        published = self.checks.x25519_key(self.address)
        mine = {x25519_public_key(secret) for secret in self.identity.x25519.values()}
        if published is None or published[1] not in mine:
            raise ConfigError(f"the X25519 key of {self.address} is not published; run `ehr keys publish` first")
        return published

    def info(self, challenge: bytes | None = None) -> dict[str, Any]:
        """Who this custodian is; with a 32-byte `challenge`, also its signed `Identity` over it."""
        version, public = self.checks.x25519_key(self.address) or (0, b"")
        answer: dict[str, Any] = {
            "custodian": self.address, "chainId": self.domain.chain_id, "consent": self.domain.consent,
            "x25519Version": version, "x25519PublicKey": "0x" + public.hex(),
            "unrecordedRefusals": self.unrecorded_refusals(),
        }
        if challenge is not None:
            answer["identity"] = messages.sign(self.identity.account.key, self.domain, "Identity",
                                               {"custodian": self.address, "challenge": "0x" + challenge.hex()})
        return answer

    def unrecorded_refusals(self) -> dict[str, int]:
        """Refusals counted but not written to the database, by reason, since the process started:
        requests refused before any signature was verified, and rate-limited ones."""
        with self._unrecorded_lock:
            return dict(self._unrecorded)

    # --- the steps every signed request goes through ----------------------------------------

    @contextmanager
    def _audited(self, action: str, message: dict[str, Any]) -> Iterator[dict[str, str]]:
        """Log each refusal. Only a refusal of a request whose signature was verified becomes a row,
        under the signer's checksummed address (the spelling in the request does not matter);
        the others, and rate-limited ones, are only counted: an unauthenticated caller cannot make
        the custodian store anything."""
        verified: dict[str, str] = {}
        try:
            yield verified
        except CustodianRefused as refusal:
            refusal.signer = verified.get("signer")
            # Strangers (no signature, or a signer the chain does not know as a member) are only
            # counted: throwaway wallets cannot make the custodian store anything either.
            if refusal.signer is None or refusal.reason in ("rate-limited", "not-a-member"):
                with self._unrecorded_lock:
                    self._unrecorded[refusal.reason] += 1
                log.debug("refused %s: %s (not recorded)", action, refusal.reason)
                raise
            record = message.get("recordId")
            try:
                record_id = bytes.fromhex(str(record).removeprefix("0x")) if record else None
            except ValueError:
                record_id = None
            self.store.log_refusal(Refusal(self._now(), action, record_id, refusal.signer, refusal.reason))
            log.info("refused %s: %s", action, refusal.reason)
            raise

    def _accept(self, kind: str, message: dict[str, Any], signature: str,
                verified: dict[str, str]) -> dict[str, Any]:
        clean = messages.check_signed(self.domain, kind, message, signature)
        verified["signer"] = clean[messages.SIGNER_FIELD[kind]]
        if clean["custodian"] != self.address:
            raise CustodianRefused("wrong-custodian",
                                   f"this request is addressed to {clean['custodian']}, not {self.address}")
        now = self._now()
        if abs(now - clean["issuedAt"]) > self.settings.request_ttl:
            raise CustodianRefused("expired-request",
                                   f"the request was signed at {clean['issuedAt']}, more than {self.settings.request_ttl} s "
                                   "from now; sign a fresh one (and check the clock)")
        signer = clean[messages.SIGNER_FIELD[kind]]
        if not self.store.claim_nonce(signer, clean["nonce"], expires_at=clean["issuedAt"] + self.settings.request_ttl,
                                      now=now):
            raise CustodianRefused("replayed-request", "this signed request was already used; sign a fresh one")
        return clean

    # --- grantees: enrolment, sessions, releases -----------------------------------------

    def enroll(self, message: dict[str, Any], signature: str) -> str:
        """A new TOTP secret for the signing grantee; its provisioning URI is shown this once."""
        with self._audited("enroll", message) as verified:
            clean = self._accept("Enroll", message, signature, verified)
            grantee = clean["grantee"]
            if not self.checks.is_active_member(grantee):
                raise CustodianRefused("not-a-member", f"{grantee} is not an active consortium member")
            secret = totp.new_secret()
            version, _ = self.identity.current_key
            sealed = self._totp_keys[version].encrypt(secret.encode(), associated_data=grantee.encode())
            if not self.store.enroll_totp(grantee, sealed, key_version=version, now=self._now()):
                raise CustodianRefused("already-enrolled",
                                       f"{grantee} is already enrolled here; the custodian's operator must reset it")
            return totp.provisioning_uri(secret, grantee=grantee, custodian=self.address)

    def open_session(self, message: dict[str, Any], signature: str, code: str) -> tuple[str, int]:
        """(token, expiry) of an MFA session, after a valid TOTP code for a time step not used before."""
        with self._audited("session", message) as verified:
            clean = self._accept("OpenSession", message, signature, verified)
            grantee = clean["grantee"]
            if not self._session_attempts.hit(grantee, limit=self.settings.session_attempts_per_minute):
                raise CustodianRefused("rate-limited", "too many session attempts for this grantee; wait a minute")
            stored = self.store.totp_secret(grantee)
            if stored is None:
                raise CustodianRefused("not-enrolled", f"{grantee} has no second factor here; enroll first")
            now = self._now()
            if self.store.count_refusals(caller=grantee, action="session", reason="mfa-failed",
                                         since=now - MFA_LOCKOUT) >= MFA_FAILURES:
                raise CustodianRefused("mfa-locked", f"too many wrong codes; try again in {MFA_LOCKOUT // 60} minutes")
            secret = self._totp_secret(grantee, *stored)
            step = totp.matching_step(secret, code, now=self.clock())
            if step is None:
                raise CustodianRefused("mfa-failed", "the one-time code is wrong")
            if not self.store.consume_totp_step(grantee, step):
                raise CustodianRefused("mfa-replayed", "this one-time code was already used; wait for the next one")
            token = secrets.token_bytes(32)
            expires = now + self.settings.session_ttl
            self.store.put_session(hashlib.sha256(token).digest(), grantee, expires_at=expires, now=now)
            return "0x" + token.hex(), expires

    def release(self, message: dict[str, Any], signature: str, session: str) -> dict[str, Any]:
        """A re-encryption fragment of the record's capsule for the grantee, after every check."""
        with self._audited("release", message) as verified:
            clean = self._accept("KeyRequest", message, signature, verified)
            grantee = clean["grantee"]
            token = _hex(session, name="session", size=32)
            token_hash = hashlib.sha256(token).digest()
            if "0x" + token_hash.hex() != clean["session"] or self.store.session(token_hash, now=self._now()) != grantee:
                raise CustodianRefused("mfa-required", "no live second-factor session for this grantee; open one")
            record_id = bytes.fromhex(clean["recordId"][2:])
            held = self.store.fragment(record_id, grantee)
            facts = self.checks.live_record(record_id, patient=held.patient if held else None)
            self.checks.grant_valid(facts, grantee)
            proof = self.checks.access_request(record_id, grantee, clean["accessTx"], patient=facts.patient)
            if self.store.access_request_used(proof.tx_hash):
                raise CustodianRefused("access-request-used",
                                       "this access request was already answered; request access again")
            fragment = self.store.fragment(record_id, grantee)
            if fragment is None or fragment.patient != facts.patient:
                raise CustodianRefused("no-fragment", f"this custodian holds no key fragment of this record for {grantee}")
            kfrag = self._open_fragment(fragment)
            cfrag = umbral_pre.reencrypt(umbral_pre.Capsule.from_bytes(fragment.capsule), kfrag)
            released = Release(self._now(), record_id, facts.patient, grantee, proof.tx_hash, proof.block_number)
            if not self.store.log_release(released):
                raise CustodianRefused("access-request-used",
                                       "this access request was already answered; request access again")
            log.info("released a fragment of record 0x%s… (access request in block %d)", record_id.hex()[:8],
                     proof.block_number)
            return {
                "cfrag": "0x" + bytes(cfrag).hex(), "threshold": fragment.threshold, "shares": fragment.shares,
                "receivingKey": "0x" + fragment.receiving_key.hex(),
                "delegatingKey": "0x" + fragment.delegating_key.hex(), "delegation": "0x" + fragment.delegation.hex(),
            }

    def _totp_secret(self, grantee: str, sealed: bytes, version: int | None) -> str:
        """The grantee's TOTP secret; one sealed under an older key version (or, in files from
        before versions were kept, an unknown one) is sealed again under the current key."""
        versions = [version] if version is not None else sorted(self._totp_keys, reverse=True)
        for candidate in versions:
            key = self._totp_keys.get(candidate)
            if key is None:
                raise KeyNotFound(f"the custodian lacks X25519 key version {candidate}, which seals the second "
                                  f"factor of {grantee}; restore its keystore")
            try:
                secret = key.decrypt(sealed, associated_data=grantee.encode()).decode()
            except DecryptionError:
                continue
            current, _ = self.identity.current_key
            if candidate != current:
                self.store.reseal_totp(grantee, self._totp_keys[current].encrypt(secret.encode(),
                                                                                 associated_data=grantee.encode()),
                                       key_version=current)
            return secret
        raise DecryptionError()

    def _open_fragment(self, fragment: Fragment) -> umbral_pre.VerifiedKeyFrag:
        secret = self.identity.x25519.get(fragment.seal_key_version)
        if secret is None:
            raise KeyNotFound(f"the custodian lacks X25519 key version {fragment.seal_key_version}; restore its keystore")
        raw = open_sealed(fragment.sealed, secret,
                          associated_data=fragment_associated_data(self.address, fragment.record_id, fragment.grantee))
        delegating = umbral_pre.PublicKey.from_compressed_bytes(fragment.delegating_key)
        receiving = umbral_pre.PublicKey.from_compressed_bytes(fragment.receiving_key)
        return umbral_pre.KeyFrag.from_bytes(raw).verify(delegating, delegating, receiving)

    # --- patients: deposits, destruction, audit ------------------------------------------

    def deposit(self, message: dict[str, Any], signature: str, items: list[dict[str, Any]]) -> int:
        """Store the patient's key fragments for one grantee; returns how many were stored."""
        with self._audited("deposit", message) as verified:
            clean = self._accept("Deposit", message, signature, verified)
            if not 0 < len(items) <= MAX_DEPOSIT or fragments_digest(items) != clean["fragments"]:
                raise CustodianRefused("malformed", f"a deposit holds 1 to {MAX_DEPOSIT} fragments, as signed")
            patient, grantee = clean["patient"], clean["grantee"]
            receiving = self.checks.umbral_key(grantee)
            if receiving is None:
                raise CustodianRefused("bad-fragment", f"{grantee} has published no Umbral key")
            head = self.checks.head()
            now = self._now()
            fragments = [self._fragment(item, patient, grantee, receiving[1], now, head) for item in items]
            self.store.put_fragments(fragments)
            return len(fragments)

    def _fragment(self, item: dict[str, Any], patient: str, grantee: str, receiving: bytes, now: int,
                  head: int) -> Fragment:
        try:
            record_id = _hex(item["recordId"], name="recordId", size=32)
            sealed = _hex(item["sealed"], name="sealed")
            sealed_to = _hex(item["sealedTo"], name="sealedTo", size=32)
            capsule = _hex(item["capsule"], name="capsule")
            delegating = _hex(item["delegatingKey"], name="delegatingKey", size=33)
            delegating_version = int(item["delegatingKeyVersion"])
            threshold, shares = int(item["threshold"]), int(item["shares"])
            delegation = _hex(item["delegation"], name="delegation", size=16)
        except (KeyError, TypeError, ValueError):
            raise CustodianRefused("malformed", "a fragment lacks a field or has one of the wrong type") from None
        if not 1 <= threshold <= shares <= MAX_SHARES:
            raise CustodianRefused("malformed", "threshold and shares must satisfy 1 <= m <= n <= 255")
        facts = self.checks.live_record(record_id, patient=patient)
        if facts.patient != patient:
            raise CustodianRefused("not-patient", f"{patient} is not the patient of record 0x{record_id.hex()}")
        if self.checks.umbral_key_at(patient, delegating_version) != delegating:
            raise CustodianRefused("bad-fragment", "the delegating key is not the patient's published Umbral key")
        version = next((v for v, s in self.identity.x25519.items() if x25519_public_key(s) == sealed_to), None)
        if version is None:
            raise CustodianRefused("bad-fragment", "the fragment is sealed to a key this custodian does not hold")
        refused = CustodianRefused("bad-fragment", "the fragment does not verify against the published keys")
        try:
            raw = open_sealed(sealed, self.identity.x25519[version],
                              associated_data=fragment_associated_data(self.address, record_id, grantee))
        except DecryptionError:
            raise refused from None
        try:
            umbral_pre.Capsule.from_bytes(capsule)
            delegating_pk = umbral_pre.PublicKey.from_compressed_bytes(delegating)
            umbral_pre.KeyFrag.from_bytes(raw).verify(delegating_pk, delegating_pk,
                                                      umbral_pre.PublicKey.from_compressed_bytes(receiving))
        except UMBRAL_ERRORS:
            raise refused from None
        return Fragment(record_id, grantee, patient, sealed, version, capsule, delegating, receiving, threshold, shares,
                        delegation, now, head)

    def destroy(self, message: dict[str, Any], signature: str) -> dict[str, Any]:
        """Shred every fragment of a record at its patient's request; returns a signed receipt."""
        with self._audited("destroy", message) as verified:
            clean = self._accept("Destroy", message, signature, verified)
            record_id = bytes.fromhex(clean["recordId"][2:])
            facts = self.checks.record(record_id, patient=clean["patient"])
            if facts.patient != clean["patient"]:
                raise CustodianRefused("not-patient", f"{clean['patient']} is not the patient of this record")
            now = self._now()
            cause = "erasure" if facts.status == "tombstoned" else "patient-request"
            self.store.destroy_record(record_id, cause=cause, now=now)
            return self.receipt(record_id, facts.patient, now=now)

    def receipt(self, record_id: bytes, patient: str, *, now: int) -> dict[str, Any]:
        """This custodian's signature over how many fragments of the record it destroyed, and that none remain."""
        message = {
            "custodian": self.address, "patient": patient, "recordId": "0x" + record_id.hex(),
            "destroyed": len(self.store.destructions(record_id=record_id)),
            "remaining": self.store.count_fragments(record_id=record_id), "erasedAt": now,
        }
        return {"message": message,
                "signature": messages.sign(self.identity.account.key, self.domain, "ErasureReceipt", message)}

    def audit(self, message: dict[str, Any], signature: str) -> list[dict[str, Any]]:
        """Every release of the signing patient's records: record, grantee, time, access request."""
        with self._audited("audit", message) as verified:
            clean = self._accept("AuditQuery", message, signature, verified)
            return [
                {"recordId": "0x" + r.record_id.hex(), "grantee": r.grantee, "releasedAt": r.at,
                 "accessTx": r.access_tx, "accessBlock": r.access_block}
                for r in self.store.releases(patient=clean["patient"])
            ]

    # --- following the chain ----------------------------------------------------------------

    def sweep(self) -> int:
        """Destroy fragments of revoked grants and erased records seen on chain since the last
        sweep; returns how many were destroyed. Starts over from the deployment block when the
        chain no longer holds the block it stopped at (a reorganisation or a reset node)."""
        w3 = self.chain.w3
        head = int(w3.eth.block_number)
        start = self.chain.deployment.deploy_block
        cursor = self.store.get_meta(_CURSOR)
        if cursor:
            number, block_hash = cursor.split(":")
            if int(number) <= head and w3.eth.get_block(int(number))["hash"].to_0x_hex() == block_hash:
                start = int(number) + 1
        if start > head:
            return 0
        now = self._now()
        destroyed = 0
        for event in self.chain.get_events("ConsentManager", "AccessRevoked", from_block=start, to_block=head):
            destroyed += self.store.destroy_pair(str(event.args["patient"]), str(event.args["grantee"]),
                                                 up_to_block=event.block_number, cause="revocation", now=now)
        for event in self.chain.get_events("RecordRegistry", "RecordTombstoned", from_block=start, to_block=head):
            destroyed += self.store.destroy_record(bytes(event.args["recordId"]), cause="erasure", now=now)
        self.store.set_meta(_CURSOR, f"{head}:{w3.eth.get_block(head)['hash'].to_0x_hex()}")
        if destroyed:
            log.info("destroyed %d fragments after revocations or erasures on chain", destroyed)
        return destroyed


_KIND = {"enroll": "Enroll", "session": "OpenSession", "release": "KeyRequest", "deposit": "Deposit",
         "destroy": "Destroy", "audit": "AuditQuery"}
