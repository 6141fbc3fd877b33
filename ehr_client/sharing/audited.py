"""Audited key release: sharing through Umbral proxy re-encryption and m-of-n key custodians.

The patient publishes an Umbral key; from then on every record written for them carries its data
key encrypted to that key (a capsule in the package header). To share, the patient's client
makes m-of-n key fragments per record for the grantee and seals each to a different custodian.
To read, the grantee requests access on chain, then asks custodians: each one checks the chain
(grant valid now, access request recent and its own, signature, second factor) before it returns
a re-encryption fragment; any m fragments open the data key. Revocation therefore bites at the
next read, `rotate` re-encrypts a record under a fresh key, and `erase` crypto-shreds it.

    sharing = AuditedSharing(patient_client, CustodianSet.connect(chain, urls), threshold=2)
    sharing.publish_umbral_key()
    sharing.grant(doctor, Scope.LAB, expires_at=t + 86400)      # on-chain grant + fragments
    doctor_side.enroll(); doctor_side.open_sessions(code_for)    # TOTP, once per session
    doctor_side.read_record(record_id)                           # m custodians release
    sharing.erase(record_id)                                     # receipts signed by custodians
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import umbral_pre
from eth_utils import to_checksum_address

from ehr_client.chain.client import TxResult
from ehr_client.client import ACCESS, EHRClient, ReadResult, RecordInfo, Skipped, WriteResult
from ehr_client.client.keysource import check_header
from ehr_client.client.model import hex_id
from ehr_client.client.share import ReissuedShare
from ehr_client.custodian.errors import CustodianRefused, CustodianUnavailable
from ehr_client.custodian.seal import fragment_associated_data, seal
from ehr_client.errors import (
    AccessDenied,
    ConfigError,
    DecryptionError,
    ErasureIncomplete,
    IntegrityError,
    KeyNotFound,
    SignatureError,
    StorageError,
)
from ehr_client.sharing.release import CustodianRelease, SessionBook, threshold_error
from ehr_client.sharing.remote import CustodianClient, CustodianInfo, CustodianSet, ErasureReceipt, Session
from ehr_client.storage import Cid

# Rounds of "tombstone, then look for versions amended in meanwhile" before erasure gives up on a
# grantee who keeps amending: each round costs the attacker a mined transaction.
MAX_SUCCESSOR_ROUNDS = 8


@dataclass(frozen=True)
class Delegation:
    """Fragments deposited for one grantee: which records, at which custodians."""

    grantee: str
    record_ids: tuple[bytes, ...]
    custodians: tuple[str, ...]
    threshold: int
    skipped: tuple[bytes, ...] = ()
    unavailable: tuple[str, ...] = ()
    tx: TxResult | None = None


@dataclass(frozen=True)
class Rotation:
    old_record_id: bytes
    written: WriteResult
    unpinned: Cid
    reissued_to: tuple[str, ...]
    receipts: tuple[ErasureReceipt, ...]
    unavailable: tuple[str, ...]


@dataclass(frozen=True)
class Erasure:
    """What erasing a record did; `unavailable` custodians destroy their fragments when their
    poller sees the tombstone, and `collect_receipts` asks them again. `reissued_shares` are the
    key shares replaced (hand each grantee its new CID); `successors` the versions amended in
    while the erasure ran, erased too; `unverified` the versions tombstoned whose anchored pointer or
    batch does not verify (another member anchored them so): there were no bytes of theirs to unpin."""

    record_ids: tuple[bytes, ...]
    tombstone_txs: tuple[TxResult, ...]
    receipts: tuple[ErasureReceipt, ...]
    unavailable: tuple[str, ...]
    unpinned: tuple[Cid, ...]
    journal_entries_removed: int
    reissued_shares: tuple[ReissuedShare, ...] = ()
    successors: tuple[bytes, ...] = ()
    unverified: tuple[Skipped, ...] = ()


@dataclass(frozen=True)
class AuditedAccess:
    """One on-chain access request and the custodians that released a fragment for it."""

    timestamp: int
    block_number: int
    tx_hash: str
    record_id: bytes
    reader: str
    released_by: tuple[str, ...]


@dataclass
class AuditedSharing:
    """The patient's and the grantee's side of audited key release, over one EHRClient."""

    client: EHRClient
    custodians: CustodianSet
    threshold: int = 2
    sessions: SessionBook = field(default_factory=SessionBook)

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ConfigError("the custodian threshold must be at least 1")

    @property
    def address(self) -> str:
        return self.client.address

    def publish_umbral_key(self) -> int:
        return self.client.publish_umbral_key()

    # --- grantee: second factor and reading -------------------------------------------------

    def enroll(self) -> dict[str, str]:
        """Enrol with every reachable custodian: custodian address -> TOTP provisioning URI (shown once)."""
        return {info.address: client.enroll(self.client.identity.account) for client, info in self._reachable()}

    def open_sessions(self, code_for: Callable[[str], str]) -> dict[str, Session]:
        """Open an MFA session at each reachable custodian with `code_for(custodian address)`.

        Raises KeyReleaseDenied (wrong or replayed codes) or CustodianUnavailable when fewer than
        `threshold` custodians have a live session afterwards.
        """
        refusals: dict[str, str] = {}
        down: list[str] = []
        for client in self.custodians.clients:
            try:
                info = self.custodians.refresh(client)
                if self.sessions.get(info.address) is None:
                    self.sessions.put(info.address, client.open_session(self.client.identity.account,
                                                                        code_for(info.address)))
            except CustodianUnavailable:
                down.append(client.address or client.url)
            except CustodianRefused as refusal:
                refusals[client.address or client.url] = refusal.reason
            except SignatureError as exc:
                refusals[client.address or client.url] = f"not used: {exc}"
        live = {a: s for a, s in self.sessions.sessions.items() if self.sessions.get(a) is not None}
        if len(live) < self.threshold:
            raise threshold_error("opening MFA sessions", self.threshold, len(live), refusals, down)
        return live

    def read_record(self, record_id: bytes) -> ReadResult:
        """Read a record whose key is released by custodians (or sealed to this reader)."""
        return self.client.read_record(record_id, key_release=CustodianRelease(self.client, self.custodians,
                                                                                self.sessions))

    # --- patient: sharing ---------------------------------------------------------------------

    def grant(self, grantee: str, scopes: int, *, access: str = "read", expires_at: int) -> Delegation:
        """Grant on chain, then deposit fragments of the records in `scopes` for the grantee."""
        result = self.client.grant(grantee, scopes, access=access, expires_at=expires_at, share_keys=False)
        delegation = self.delegate(grantee, scopes=scopes)
        return Delegation(delegation.grantee, delegation.record_ids, delegation.custodians, delegation.threshold,
                          delegation.skipped, delegation.unavailable, result.tx)

    def delegate(self, grantee: str, *, scopes: int | None = None,
                 record_ids: Sequence[bytes] | None = None) -> Delegation:
        """Deposit m-of-n fragments for `grantee` of the given records (default: every active
        record of this patient within `scopes`), one fragment per reachable custodian.

        Records without an Umbral capsule are skipped (listed in the result). The chain decides
        at release time whether the grantee may use them.
        """
        grantee = to_checksum_address(grantee)
        receiving = self.client.umbral_key_of(grantee)
        if receiving is None:
            raise KeyNotFound(f"{grantee} has published no Umbral key; they must publish one before records are shared")
        records = self._records_to_share(scopes, record_ids)
        reachable = self._reachable()
        if len(reachable) < self.threshold:
            raise CustodianUnavailable(
                f"only {len(reachable)} custodians answer, fewer than the threshold {self.threshold}; start more"
            )
        items: dict[str, list[dict[str, object]]] = {info.address: [] for _, info in reachable}
        shared, skipped = [], []
        for info in records:
            try:
                header = self.client.read_header(info.cid)
                binding = check_header(info, header)
            except (IntegrityError, DecryptionError, StorageError):
                skipped.append(info.record_id)  # missing, altered, or re-listed under another identity
                continue
            if header.umbral is None:
                skipped.append(info.record_id)
                continue
            delegating = self.client.umbral_key_at(self.address, header.umbral.key_version)
            secret = self.client.identity.umbral_secret_for(delegating)
            if secret is None:
                raise KeyNotFound(f"this keystore lacks the Umbral key version {header.umbral.key_version} "
                                  "the record was sealed to")
            try:
                # The capsule must open, with the patient's own key, to this record's identity: a
                # capsule copied from another record (say, mental health into a lab record's header)
                # would otherwise be re-encrypted to the grantee, who can ignore the binding.
                header.umbral.open_original(secret, info.record_id, header.version, binding.context)
            except DecryptionError:
                skipped.append(info.record_id)
                continue
            kfrags = _kfrags(secret, receiving[1], self.threshold, len(reachable))
            delegation = "0x" + secrets.token_hex(16)
            for kfrag, (_, custodian) in zip(kfrags, reachable, strict=True):
                aad = fragment_associated_data(custodian.address, info.record_id, grantee)
                items[custodian.address].append({
                    "recordId": "0x" + info.record_id.hex(),
                    "sealed": "0x" + seal(kfrag, custodian.x25519_public, associated_data=aad).hex(),
                    "sealedTo": "0x" + custodian.x25519_public.hex(),
                    "capsule": "0x" + header.umbral.capsule.hex(),
                    "delegatingKey": "0x" + delegating.hex(),
                    "delegatingKeyVersion": header.umbral.key_version,
                    "threshold": self.threshold, "shares": len(reachable), "delegation": delegation,
                })
            shared.append(info.record_id)
        stored, unavailable, refusals = [], [], {}
        for client, custodian in reachable:
            if not items[custodian.address]:
                continue
            try:
                client.deposit(self.client.identity.account, grantee, items[custodian.address])
                stored.append(custodian.address)
            except CustodianUnavailable:
                unavailable.append(custodian.address)
            except CustodianRefused as refusal:
                refusals[custodian.address] = refusal.reason
        if shared and len(stored) < self.threshold:
            raise threshold_error("depositing key fragments", self.threshold, len(stored), refusals, unavailable)
        return Delegation(grantee, tuple(shared), tuple(stored), self.threshold, tuple(skipped), tuple(unavailable))

    def _records_to_share(self, scopes: int | None, record_ids: Sequence[bytes] | None) -> list[RecordInfo]:
        if record_ids is not None:
            records = [self.client.get_record(r) for r in record_ids]
            for info in records:
                if info.patient != self.address:
                    raise AccessDenied(f"record 0x{info.record_id.hex()} is not a record of {self.address}")
            return [r for r in records if r.status == "active"]
        return [r for r in self.client.list_records(self.address)
                if r.status == "active" and (scopes is None or r.scope & scopes == r.scope)]

    def valid_grantees(self, scope: int) -> list[str]:
        """Grantees who may read `scope` of this patient's records now, by chain and clock."""
        chain = self.client.chain
        grantees = sorted({str(e.args["grantee"]) for e in
                           chain.get_events("ConsentManager", "AccessGranted", filters={"patient": self.address})}
                          - {self.address})
        if not grantees:
            return []
        consent = chain.consent.functions
        allowed = chain.batch_call([consent.canRead(self.address, g, scope) for g in grantees], action="check grantees")
        grants = chain.batch_call([consent.getGrant(self.address, g) for g in grantees], action="read grants")
        now = max(int(time.time()), chain.now())
        return [g for g, ok, grant in zip(grantees, allowed, grants, strict=True)
                if ok and int(grant[1]) > now and int(grant[2]) >= ACCESS["read"]]

    # --- patient: rotation and erasure -------------------------------------------------------

    def rotate(self, record_id: bytes) -> Rotation:
        """Re-encrypt a record under a new data key (new version, new CID), destroy the old
        version's fragments, unpin the old blob, and re-issue fragments to grantees still valid."""
        info = self._own_record(record_id)
        written = self.client.reencrypt_record(record_id)
        receipts, unavailable = self._destroy_everywhere([record_id])
        self.client.unpin_versions([info])
        reissued = []
        for grantee in self.valid_grantees(info.scope):
            if self.client.umbral_key_of(grantee) is None:
                continue
            self.delegate(grantee, record_ids=[written.record_id])
            reissued.append(grantee)
        return Rotation(record_id, written, info.cid, tuple(reissued), tuple(receipts), tuple(unavailable))

    def erase(self, record_id: bytes) -> Erasure:
        """Crypto-shred a record and every version of it, earlier and later (GDPR Art. 17): tombstone
        on chain, custodians destroy their fragments and sign receipts, blobs (ciphertext and the
        keyring with the wrapped keys) are unpinned, the key shares this wallet stored are re-issued
        without the erased data keys (new CIDs in `reissued_shares`) and the old ones unpinned,
        local journal entries removed.

        A version amended in while the erasure runs (a grantee with amend access racing it) is found
        after the tombstones and erased too, until no version of the chain is live; the chain refuses
        to amend a tombstoned version, so a round that finds nothing new ends it. Every step is
        idempotent: after a crash or an `ErasureIncomplete`, run the same erasure again.

        Versions are the chain's facts (`EHRClient.versions_of`, `successors_of`): a version whose
        anchored pointer is not a CID (a grantee may anchor one) is tombstoned by id like any other
        and listed in `unverified`; it has no bytes to unpin and stops nothing.
        """
        versions = self.client.versions_of(record_id)
        if versions[0].patient != self.address:
            raise AccessDenied(f"only the patient may rotate or erase record 0x{record_id.hex()}")
        self.client.journal.shares()  # a damaged shares.log stops the erasure before anything changes
        txs = [self.client.tombstone(v.tombstone_target()) for v in versions if not v.tombstoned]
        successors: list[bytes] = []
        for _ in range(MAX_SUCCESSOR_ROUNDS):
            later = self.client.successors_of({v.record_id for v in versions})
            if not later:
                break
            txs += [self.client.tombstone(v.tombstone_target()) for v in later if not v.tombstoned]
            versions += later
            successors += [v.record_id for v in later]
        else:
            live = self.client.successors_of({v.record_id for v in versions})
            if live:
                authors = sorted({v.author for v in live})
                raise ErasureIncomplete(
                    f"record {hex_id(record_id)} was amended again after each of {MAX_SUCCESSOR_ROUNDS} rounds of "
                    f"tombstones (latest: {', '.join(hex_id(v.record_id) for v in live)}); revoke the amend access "
                    f"of {', '.join(authors)} (`ehr revoke GRANTEE`), then run the same erasure again")
        ids = [v.record_id for v in versions]
        receipts, unavailable = self._destroy_everywhere(ids)
        for receipt in receipts:
            receipt.verify(self.custodians.domain)
        # bytes another record re-listed here stay; a version whose pointer does not verify has none to unpin
        unpinned, _ = self.client.unpin_versions([v.info for v in versions if v.info is not None])
        reissued = self.client.sharer.reissue_without(set(ids))
        removed = self.client.journal.forget({"0x" + r.hex() for r in ids})
        unverified = tuple(Skipped(f"record {hex_id(v.record_id)}", v.problem or "", v.author)
                           for v in versions if v.info is None)
        return Erasure(tuple(ids), tuple(txs), tuple(receipts), tuple(unavailable), tuple(unpinned), removed,
                       tuple(reissued), tuple(successors), unverified)

    def collect_receipts(self, record_id: bytes) -> list[ErasureReceipt]:
        """Ask every reachable custodian again for its (idempotent) destruction receipt."""
        receipts, _ = self._destroy_everywhere([record_id])
        return receipts

    def _destroy_everywhere(self, record_ids: Sequence[bytes]) -> tuple[list[ErasureReceipt], list[str]]:
        receipts: list[ErasureReceipt] = []
        unavailable: list[str] = []
        for client in self.custodians.clients:
            try:
                for record_id in record_ids:
                    receipts.append(client.destroy(self.client.identity.account, record_id))
            except CustodianUnavailable:
                unavailable.append(client.address or client.url)
        return receipts, unavailable

    def _own_record(self, record_id: bytes) -> RecordInfo:
        info = self.client.get_record(record_id)
        if info.patient != self.address:
            raise AccessDenied(f"only the patient may rotate or erase record 0x{record_id.hex()}")
        return info

    # --- audit ----------------------------------------------------------------------------------

    def access_report(self) -> list[AuditedAccess]:
        """Every access request to this patient's records (on chain), with the custodians that
        released a fragment for it (from their logs)."""
        released: dict[str, list[str]] = {}
        for client, info in self._reachable():
            for entry in client.audit(self.client.identity.account):
                released.setdefault(str(entry["accessTx"]).lower(), []).append(info.address)
        return [
            AuditedAccess(e.timestamp, e.block_number, e.tx_hash, e.record_id or b"", e.actor,
                          tuple(released.get(e.tx_hash.lower(), [])))
            for e in self.client.audit_trail(self.address) if e.event == "AccessRequested"
        ]

    def _reachable(self) -> list[tuple[CustodianClient, CustodianInfo]]:
        return self.custodians.reachable()


def _kfrags(delegating_secret: bytes, receiving_public: bytes, threshold: int, shares: int) -> list[bytes]:
    secret = umbral_pre.SecretKey.from_be_bytes(delegating_secret)
    receiving = umbral_pre.PublicKey.from_compressed_bytes(receiving_public)
    return [bytes(k) for k in umbral_pre.generate_kfrags(secret, receiving, umbral_pre.Signer(secret), threshold,
                                                          shares, True, True)]


__all__ = ["AuditedAccess", "AuditedSharing", "Delegation", "Erasure", "Rotation"]
