"""`EHRClient`: the high-level API apps and the CLI use.

One record model, whatever way a record was anchored: `get_record`, `list_records`, `read_record`,
`read_history`, `verify_record`, `amend_record`, `share_keys` and erasure take single and batched
records alike (`RecordInfo.batch` carries a batched record's proof). The pipelines live in
`write`, `read`, `locate` and `share`; this class composes them for one identity.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from ehr_client.audit import AuditEntry, AuditIndex
from ehr_client.chain.calls import Call
from ehr_client.chain.client import ChainClient, TxResult
from ehr_client.chain.eip712 import (
    Domain,
    GrantMessage,
    RevokeMessage,
    check_domain,
    deployed_domain,
    grant_typed_data,
    parse_typed_data,
    rebuild_typed_data,
    recover_typed_data_signer,
    revoke_typed_data,
    sign_typed_data,
)
from ehr_client.chain.types import Access, KeyType
from ehr_client.client.consent import SignedConsent
from ehr_client.client.directory import KeyDirectory
from ehr_client.client.grantee import check_grantee
from ehr_client.client.keysource import check_header, own_data_key
from ehr_client.client.anchor_cache import DEFAULT_DEPTH, AnchorCache
from ehr_client.client import lineage
from ehr_client.client.lineage import Version
from ehr_client.client.locate import RecordLocator
from ehr_client.client.model import (
    GrantResult,
    Identity,
    KeyRelease,
    Listing,
    ReadResult,
    RecordInfo,
    Skipped,
    VerifyResult,
    WriteResult,
    hex_id,
    umbral_public_key,
)
from ehr_client.client.read import RecordReader
from ehr_client.client.share import KeySharer, ShareOutcome
from ehr_client.client.write import Prepared, RecordWriter, Source, prepare
from ehr_client.crypto import iter_decrypt, x25519_public_key
from ehr_client.decisions import DecisionLog
from ehr_client.errors import (
    AlreadyRelayed,
    BlobNotFound,
    ConsentRefused,
    EHRError,
    IntegrityError,
    InvalidRecord,
    KeyNotFound,
)
from ehr_client.journal import Journal
from ehr_client.package import PackageHeader, parse_header
from ehr_client.records import ALL_SCOPES
from ehr_client.records.purpose import DEFAULT_PURPOSE, parse_purpose
from ehr_client.storage import BlobStore, Cid

log = logging.getLogger("ehr_client")

ACCESS = {"read": Access.READ, "amend": Access.AMEND}


class EHRClient:
    """Encrypt, store, anchor, share, read and verify a patient's records."""

    def __init__(self, chain: ChainClient, store: BlobStore, identity: Identity, *, state_dir: Path,
                 listing_depth: int = DEFAULT_DEPTH) -> None:
        """`listing_depth`: how many blocks below the head a patient's listing cursor stays (see
        `ehr_client.client.anchor_cache`); raise it on a chain whose forks can be deeper."""
        self.chain = chain
        self.store = store
        self.identity = identity
        self.state_dir = Path(state_dir)
        # Keyed by the wallet, which is the author's identity: an encryption key rotates, and a write
        # retried after a rotation must still land as the same record.
        journal_secret = hashlib.sha256(b"ehr-journal/wallet" + bytes(identity.account.key)).digest()
        self.journal = Journal(self.state_dir, journal_secret)
        self.decisions = DecisionLog(self.state_dir)
        self.directory = KeyDirectory(chain)
        self.locator = RecordLocator(chain, store, anchors=AnchorCache(chain, self.state_dir, depth=listing_depth))
        self.reader = RecordReader(chain, store, identity)
        self.writer = RecordWriter(chain, store, identity, self.journal, self.directory)
        self.sharer = KeySharer(identity, self.locator, self.reader, self.directory, self.journal)

    @property
    def address(self) -> str:
        return self.identity.address

    # --- identity and keys -----------------------------------------------------------------

    def register_patient(self) -> TxResult:
        return self.chain.transact(self.identity.account, self.chain.records.functions.registerPatient(),
                                   action="register patient")

    def publish_key(self) -> int:
        """Publish this identity's current X25519 public key; returns its on-chain version."""
        _, private = self.identity.current_key
        fn = self.chain.keys.functions.publishKey(KeyType.X25519, x25519_public_key(private))
        result = self.chain.transact(self.identity.account, fn, action="publish encryption key")
        return int(self.chain.events_in(result, "KeyRegistry", "KeyPublished")[0]["version"])

    def publish_umbral_key(self) -> int:
        """Publish this identity's newest Umbral public key; returns its on-chain version.

        Records written for this account from then on carry the data key encrypted to it, so it
        can delegate reading through key custodians. A no-op when it is already the current key.
        """
        public = umbral_public_key(self.identity.current_umbral_key[1])
        current = self.umbral_key_of(self.address)
        if current is not None and current[1] == public:
            return current[0]
        fn = self.chain.keys.functions.publishKey(KeyType.UMBRAL, public)
        result = self.chain.transact(self.identity.account, fn, action="publish Umbral key")
        self.directory.forget_umbral(self.address)
        return int(self.chain.events_in(result, "KeyRegistry", "KeyPublished")[0]["version"])

    def umbral_key_of(self, account: str) -> tuple[int, bytes] | None:
        """(on-chain version, compressed public key) of `account`'s current Umbral key, or None."""
        return self.directory.umbral_key_of(account)

    def umbral_key_at(self, account: str, version: int) -> bytes:
        return self.directory.umbral_key_at(account, version)

    def encryption_key_of(self, account: str) -> tuple[int, bytes]:
        return self.directory.encryption_key_of(account)

    # --- writing ---------------------------------------------------------------------------

    def add_record(
        self, patient: str, source: Source, *, category: str | None = None, scope: int | None = None
    ) -> WriteResult:
        """Validate, encrypt, store and anchor a new record for `patient`.

        `source` is a FHIR resource (dict, JSON text or bytes, or a path to a JSON file), or with
        `category` ("pdf", "dicom", "genomic", ...) an opaque file (bytes or path) streamed in
        bounded memory. Writing the same content for the same patient again returns the record it
        already landed as (`tx` None): a write is idempotent.
        """
        prepared = prepare(source, category=category, scope=scope)
        return self.writer.write(to_checksum_address(patient), prepared, previous=None, version=1)

    def amend_record(self, previous_id: bytes, source: Source, *, category: str | None = None) -> WriteResult:
        """Anchor a new version of a record (single or batched); the old version stays readable as history."""
        previous = self.get_record(previous_id)
        if previous.status != "active":
            raise InvalidRecord(f"record {hex_id(previous_id)} is {previous.status}; amend its latest active version")
        prepared = prepare(source, category=category, scope=previous.scope)
        return self._amend(previous, prepared)

    def _amend(self, previous: RecordInfo, prepared: Prepared) -> WriteResult:
        if prepared.scope != previous.scope:
            raise InvalidRecord("an amendment keeps the scope of the record it amends")
        version = self.reader.header(previous.cid).version + 1
        return self.writer.write(previous.patient, prepared, previous=previous, version=version)

    def reencrypt_record(self, record_id: bytes) -> WriteResult:
        """Key rotation: anchor the same content as a new version under a fresh data key.

        Needs a wrap in the record's keyring (the patient, or the author) and write permission.
        The new version is sealed to the patient and this writer only; sharing it again is the
        caller's job (`ehr_client.sharing.audited` re-issues custodian fragments). Holds the plaintext in memory.
        """
        info = self.get_record(record_id)
        if info.status != "active":
            raise InvalidRecord(f"record {hex_id(record_id)} is {info.status}; rotate its latest active version")
        blob = self.reader.fetch_verified(info, doing="rotated")
        header, offset = parse_header(blob)
        binding = check_header(info, header)
        data_key = own_data_key(self.identity, header, binding)
        if data_key is None:
            raise KeyNotFound(
                f"record {hex_id(record_id)} is not sealed to {self.address}; only its patient or author can rotate it"
            )
        data = b"".join(iter_decrypt(memoryview(blob)[offset:], data_key, record_id=record_id,
                                     version=header.version, context=binding.context))
        prepared = Prepared(info.scope, header.media_type, data, hashlib.sha256(data).digest())
        return self._amend(info, prepared)

    # --- locating ----------------------------------------------------------------------------

    def get_record(self, record_id: bytes) -> RecordInfo:
        """What the chain says about one record version, single or batched."""
        return self.locator.find(record_id)

    def versions_of(self, record_id: bytes) -> list[Version]:
        """The version `record_id` and every version it was amended onto, newest first, as the chain states
        them (`ehr_client.client.lineage`): unverifiable ones included, with why."""
        (version,) = lineage.versions(self.locator, [record_id])
        return [version, *lineage.predecessors(self.locator, version)]

    def successors_of(self, record_ids: Collection[bytes]) -> list[Version]:
        """Every version amended onto one of `record_ids`, transitively, as the chain states them: unverifiable
        ones included, with why (what erasure must tombstone whatever their pointers)."""
        return lineage.successors(self.locator, record_ids)

    def list_records(self, patient: str) -> list[RecordInfo]:
        """Every record version of `patient`, single and batched, oldest first (unverifiable batches left out;
        `list_records_report` says which)."""
        return list(self.locator.listing(patient).records)

    def list_records_report(self, patient: str) -> Listing:
        """`list_records` with what was skipped as unverifiable, and why."""
        return self.locator.listing(patient)

    # --- reading ---------------------------------------------------------------------------

    def read_record(
        self, record: bytes | RecordInfo, *, key_share: Cid | None = None, key_release: KeyRelease | None = None
    ) -> ReadResult:
        """Check permission, record the access on chain, fetch, verify and decrypt one record.

        The data key comes from this reader's wrap in the keyring, else from `key_release`
        (custodians, after the access request), else from the key share.
        """
        if isinstance(record, RecordInfo):
            return self.reader.read([record], key_share=key_share, key_release=key_release)[0]
        return self.reader.read_by_id(record, self.locator, key_share=key_share, key_release=key_release)

    def read_records(self, records: Sequence[bytes | RecordInfo], *, key_share: Cid | None = None) -> list[ReadResult]:
        """Read many records: every chain check in one round trip, every access request in one batch."""
        infos = [r if isinstance(r, RecordInfo) else self.get_record(r) for r in records]
        return self.reader.read(infos, key_share=key_share)

    def read_history(
        self, patient: str, *, scopes: int = int(ALL_SCOPES), key_share: Cid | None = None
    ) -> list[ReadResult]:
        """Every record version of `patient` within `scopes`, single and batched, oldest first; erased
        records and unverifiable batches are left out. Raises AccessDenied if the reader may not read
        one of them: pass the `scopes` you were granted."""
        return self.read_history_report(patient, scopes=scopes, key_share=key_share)[0]

    def read_history_report(
        self, patient: str, *, scopes: int = int(ALL_SCOPES), key_share: Cid | None = None
    ) -> tuple[list[ReadResult], list[Skipped]]:
        """`read_history`, with what was skipped (unverifiable batches, records whose blob is missing
        or fails a check, or whose key this reader lacks) and why: one bad record never hides the rest."""
        listing = self.locator.listing(patient)
        skipped = list(listing.skipped)
        infos = [r for r in listing.records if r.scope & scopes == r.scope]
        return self.reader.read(infos, key_share=key_share, skip_erased=True, skipped=skipped), skipped

    def fetch_verified(self, info: RecordInfo, *, doing: str) -> bytes:
        """The stored bytes of a record, only if their sha256 is the one anchored on chain."""
        return self.reader.fetch_verified(info, doing=doing)

    def read_header(self, cid: Cid) -> PackageHeader:
        """The package header (keyring, media type, binding, Umbral capsule) of a stored record; no decryption."""
        return self.reader.header(cid)

    def unpin_versions(self, versions: Sequence[RecordInfo]) -> tuple[list[Cid], list[tuple[Cid, str]]]:
        """Remove the stored bytes of record versions being erased or rotated away, each only if its
        package names that very record. Any author may list any CID under a new id of its own, so
        bytes found under a version may belong to another record, which would lose its only copy:
        those stay. Returns (CIDs removed or already gone, [(CID, why it stayed)])."""
        removed: list[Cid] = []
        kept: list[tuple[Cid, str]] = []
        for version in versions:
            try:
                header = self.read_header(version.cid)
            except BlobNotFound:
                removed.append(version.cid)
                continue
            except EHRError as exc:
                kept.append((version.cid, f"its stored bytes could not be checked ({exc}); left in place"))
                continue
            if header.binding is None or header.binding.record_id != version.record_id:
                kept.append((version.cid, "its stored bytes belong to another record (re-listed under this one); "
                                          "left in place"))
                continue
            self.store.remove(version.cid)
            removed.append(version.cid)
        return removed, kept

    # --- verifying ---------------------------------------------------------------------------

    def verify_record(self, record_id: bytes) -> VerifyResult:
        """Whether the stored bytes still match the chain (no decryption, no access request)."""
        return self._verify(self.get_record(record_id))

    def _verify(self, info: RecordInfo) -> VerifyResult:
        if info.status == "tombstoned":
            return VerifyResult(info.record_id, True, "erased")
        digest = hashlib.sha256()
        try:
            for chunk in self.store.iter_get(info.cid):
                digest.update(chunk)
        except BlobNotFound:
            return VerifyResult(info.record_id, False, "missing from the store")
        except IntegrityError:
            return VerifyResult(info.record_id, False, "stored bytes do not match their CID")
        if digest.digest() != info.content_hash:
            return VerifyResult(info.record_id, False, "hash differs from the chain")
        return VerifyResult(info.record_id, True)

    def verify_all(self, patient: str) -> list[VerifyResult]:
        return [self._verify(info) for info in self.list_records(patient)]

    # --- erasing -----------------------------------------------------------------------------

    def tombstone(self, record: RecordInfo | bytes) -> TxResult:
        """Tombstone one record version on chain (the patient only); see `ehr_client.sharing.audited` for erasure.

        By id for a version the chain stores on its own (any single record, any amended one): no
        stored bytes are needed. A batched record never amended nor tombstoned needs its `RecordInfo`."""
        records = self.chain.records.functions
        if isinstance(record, bytes):
            record_id, batch = record, None
        else:
            record_id, batch = record.record_id, record.batch
        if batch is not None and int(self.chain.call(records.recordStatus(record_id), action="look up record")) == 0:
            fn = records.tombstoneBatchedRecord(batch.as_arg())
        else:
            fn = records.tombstone(record_id)
        tx = self.chain.transact(self.identity.account, fn, action="erase record")
        self.decisions.erased(self.address, record_id, tx)
        return tx

    # --- consent -----------------------------------------------------------------------------

    def grant(
        self, grantee: str, scopes: int, *, access: str = "read", expires_at: int, share_keys: bool = True,
        purpose: str = DEFAULT_PURPOSE,
    ) -> GrantResult:
        """Grant `grantee` access to the caller's records in `scopes` for `purpose`, then share their keys.

        Terms the chain would refuse, a grantee who could not act on the grant (`InvalidGrantee`) and
        one without a usable key fail before anything is granted; the keys are sealed only once the
        grant is mined (`share_keys` again if that fails).
        """
        grantee = to_checksum_address(grantee)
        args = (grantee, scopes, ACCESS[access], expires_at, parse_purpose(purpose).word)
        fn = self.chain.consent.functions.grant(*args)
        gas = check_grantee(self.chain, grantee, amend=access == "amend", action="grant access",
                            estimate=(self.address, Call(self.chain.consent, "grant", args)))
        if share_keys:
            self.directory.encryption_key_of(grantee)
        tx = self.chain.transact(self.identity.account, fn, action="grant access", gas=gas)
        self.decisions.granted(self.address, grantee, scopes, ACCESS[access], expires_at, parse_purpose(purpose).word,
                               tx)
        outcome = self.sharer.share(grantee, scopes) if share_keys else ShareOutcome(None, 0, ())
        return GrantResult(tx, outcome.cid, outcome.shared, outcome.skipped)

    def consent_domain(self) -> Domain:
        """The EIP-712 domain of this deployment's ConsentManager, as the contract reports it."""
        return deployed_domain(self.chain.consent, lambda fn: self.chain.call(fn, action="read consent domain"))

    def grant_document(
        self, grantee: str, scopes: int, *, access: str = "read", purpose: str = DEFAULT_PURPOSE, expires_at: int,
        deadline: int,
    ) -> dict[str, Any]:
        """The EIP-712 grant for the caller to sign (in any wallet) at the pair's current nonce; refused
        (`InvalidGrantee`) for a grantee who could not act on it."""
        grantee = to_checksum_address(grantee)
        if access not in ACCESS:
            raise InvalidRecord(f"access must be one of {', '.join(ACCESS)}")
        check_grantee(self.chain, grantee, amend=access == "amend", action="prepare grant")
        nonce = self.chain.call(self.chain.consent.functions.nonces(self.address, grantee), action="read nonce")
        return grant_typed_data(
            self.consent_domain(), patient=self.address, grantee=grantee, scopes=scopes, may_amend=access == "amend",
            purpose=parse_purpose(purpose).word, grant_ends_at=expires_at, nonce=int(nonce),
            signature_valid_until=deadline,
        )

    def sign_grant(
        self, grantee: str, scopes: int, *, access: str = "read", expires_at: int, deadline: int,
        share_keys: bool = True, purpose: str = DEFAULT_PURPOSE,
    ) -> SignedConsent:
        """The patient's EIP-712 signature over a grant, for a relayer to submit; no gas needed.
        `deadline` is the signature's `signatureValidUntil`, `expires_at` the grant's `grantEndsAt`.

        No keys travel with it: the patient shares them (`share_keys`) once the grant is relayed, since
        a signature may yet be voided or expire unrelayed. A grantee who could not act on it
        (`InvalidGrantee`) and, with `share_keys`, one without a usable encryption key fail here,
        before anything is signed."""
        if share_keys:
            self.directory.encryption_key_of(to_checksum_address(grantee))
        typed = self.grant_document(grantee, scopes, access=access, purpose=purpose, expires_at=expires_at,
                                    deadline=deadline)
        return SignedConsent(typed, sign_typed_data(self.identity.account.key, typed))

    def _check_signed(self, signed: SignedConsent, kind: type[GrantMessage] | type[RevokeMessage]) -> Any:
        """The message of `signed` once it is of `kind`, made for this deployment and signed by its
        patient, and for a grant, to a grantee who can act on it; a relayer pays no gas for a consent
        the chain would refuse or that would open nothing."""
        domain, message = parse_typed_data(signed.typed_data)
        if not isinstance(message, kind):
            raise InvalidRecord(f"this signed consent is a {type(message).__name__[:-7].lower()}, "
                                f"not a {kind.__name__[:-7].lower()}")
        check_domain(domain, self.consent_domain())
        signer = recover_typed_data_signer(rebuild_typed_data(domain, message), signed.signature)
        if signer != message.patient:
            raise ConsentRefused(f"the signature is by {signer}, not by patient {message.patient}, over these exact "
                                 "fields (altered after signing, or signed by another wallet)")
        if isinstance(message, GrantMessage):
            check_grantee(self.chain, message.grantee, amend=message.may_amend, action="relay signed grant")
        return message

    def verify_consent(self, signed: SignedConsent) -> GrantMessage | RevokeMessage:
        """The signed grant or revocation, if its signature, deployment, nonce and validity hold.

        Raises:
            ConsentRefused: as `relay_grant` and `relay_revoke` would.
        """
        message = signed.message
        return self._check_signed(signed, GrantMessage if isinstance(message, GrantMessage) else RevokeMessage)

    def relay_grant(self, signed: SignedConsent) -> TxResult:
        """Submit a patient's signed grant (anyone may; the relayer cannot alter it).

        Raises:
            AlreadyRelayed: this very grant is already in force.
            ConsentRefused: another deployment, another signer, a used nonce, past its validity.
            InvalidGrantee: the grantee could not act on it (not an active member; not a provider or lab to amend).
        """
        m: GrantMessage = self._check_signed(signed, GrantMessage)
        fn = self.chain.consent.functions.grantBySig(
            m.patient, m.grantee, m.scopes, m.may_amend, m.purpose, m.grant_ends_at, m.signature_valid_until,
            signed.signature,
        )
        scopes, expires, access, nonce, grant_nonce, _ = self.chain.call(
            self.chain.consent.functions.getGrant(m.patient, m.grantee), action="read grant")
        if nonce > m.nonce and grant_nonce == m.nonce and (scopes, expires, access) == (
                m.scopes, m.grant_ends_at, ACCESS["amend" if m.may_amend else "read"]):
            raise AlreadyRelayed(f"already relayed: the grant by {m.patient} to {m.grantee} signed at nonce "
                                 f"{m.nonce} is in force; nothing to send")
        tx = self.chain.transact(self.identity.account, fn, action="relay signed grant")
        self.decisions.relayed("grant", m.patient, m.grantee, signed.to_json(), tx, scopes=m.scopes,
                               access=ACCESS["amend" if m.may_amend else "read"], expires_at=m.grant_ends_at,
                               purpose=m.purpose)
        return tx

    def revoke(self, grantee: str) -> TxResult:
        fn = self.chain.consent.functions.revoke(to_checksum_address(grantee))
        tx = self.chain.transact(self.identity.account, fn, action="revoke access")
        self.decisions.revoked(self.address, to_checksum_address(grantee), tx)
        return tx

    def revoke_document(self, grantee: str, *, deadline: int) -> dict[str, Any]:
        """The EIP-712 revocation for the caller to sign at the pair's current nonce: it ends any
        grant signed at that nonce or earlier, whichever is relayed first."""
        grantee = to_checksum_address(grantee)
        nonce = self.chain.call(self.chain.consent.functions.nonces(self.address, grantee), action="read nonce")
        return revoke_typed_data(self.consent_domain(), patient=self.address, grantee=grantee, nonce=int(nonce),
                                 signature_valid_until=deadline)

    def sign_revoke(self, grantee: str, *, deadline: int) -> SignedConsent:
        typed = self.revoke_document(grantee, deadline=deadline)
        return SignedConsent(typed, sign_typed_data(self.identity.account.key, typed))

    def relay_revoke(self, signed: SignedConsent) -> TxResult:
        """Submit a patient's signed revocation.

        Raises:
            AlreadyRelayed: no grant is in force and the pair moved past this revocation's nonce.
            ConsentRefused: as for `relay_grant`, or the patient granted again after signing it.
        """
        m: RevokeMessage = self._check_signed(signed, RevokeMessage)
        scopes, expires, access, nonce, _, _ = self.chain.call(
            self.chain.consent.functions.getGrant(m.patient, m.grantee), action="read grant")
        if access == 0 and nonce > m.nonce:
            raise AlreadyRelayed(f"already relayed: no grant by {m.patient} to {m.grantee} is in force; "
                                 "nothing to revoke")
        fn = self.chain.consent.functions.revokeBySig(m.patient, m.grantee, m.nonce, m.signature_valid_until,
                                                      signed.signature)
        tx = self.chain.transact(self.identity.account, fn, action="relay signed revocation")
        # The terms it ended: after a rollback, `recover` relays it again only over these very terms.
        self.decisions.relayed("revoke", m.patient, m.grantee, signed.to_json(), tx, scopes=int(scopes),
                               access=int(access), expires_at=int(expires))
        return tx

    def share_keys(self, grantee: str, scopes: int) -> tuple[Cid | None, int]:
        """Seal the data keys of the caller's active records within `scopes` (single and batched) to
        `grantee`, store the key share, and return its CID and how many records it covers. Only
        records under a grant in force now are sealed; unverifiable ones are skipped too
        (`sharer.share` returns them)."""
        outcome = self.sharer.share(grantee, scopes)
        return outcome.cid, outcome.shared

    # --- audit ----------------------------------------------------------------------------------

    def audit_trail(self, patient: str) -> list[AuditEntry]:
        """Every fact about `patient`'s records and consent (writes, batches, amendments, erasures,
        grants, revocations, reads, break-glass), from the local audit index, brought up to date first."""
        with AuditIndex.open(self.chain, self.state_dir / "audit") as index:
            index.sync()
            return [row.to_audit_entry() for row in index.trail(patient=patient)]

