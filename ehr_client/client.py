"""`EHRClient`: the high-level API apps and the CLI use.

One write: validate -> canonical bytes -> AES-256-GCM under a fresh data key -> package (keyring
for patient and author + envelope) to the store -> sha256 + CID + scope anchored on chain.
One read: `canRead` view -> `requestAccess` transaction (the on-chain fact of the read) -> fetch by
CID -> sha256 checked against the chain -> data key from the keyring or a key share -> decrypt ->
validate. Nothing is fetched before the chain says yes, and nothing is returned that failed a check.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import umbral_pre
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from ehr_client._json import load_untrusted
from ehr_client.chain.client import ChainClient, EventRecord, TxResult
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
from ehr_client.crypto import (
    HashedChunks,
    generate_data_key,
    generate_x25519_keypair,
    iter_decrypt,
    iter_encrypt,
    record_associated_data,
    unwrap_data_key,
    wrap_data_key,
    x25519_public_key,
)
from ehr_client.errors import (
    AccessDenied,
    AlreadyRelayed,
    BlobNotFound,
    ConsentRefused,
    DecryptionError,
    IntegrityError,
    InvalidRecord,
    KeyNotFound,
    RecordErased,
    RecordNotFound,
    TransactionReverted,
)
from ehr_client.journal import Journal, PendingWrite
from ehr_client.keys import Keystore
from ehr_client.package import PackageHeader, UmbralSeal, Wrap, max_header_size, parse_header
from ehr_client.records import Scope, describe, load_opaque, validate_fhir
from ehr_client.records.purpose import DEFAULT_PURPOSE, parse_purpose
from ehr_client.sharing import KeyShare, ShareEntry
from ehr_client.storage import BlobStore, Cid, cid_from_bytes, cid_to_bytes

log = logging.getLogger("ehr_client")

X25519_KEY_TYPE = 1
UMBRAL_KEY_TYPE = 3
UMBRAL_KEY_CACHE_SECONDS = 10.0
ACCESS = {"read": 1, "amend": 2}
STATUS = {0: "none", 1: "active", 2: "superseded", 3: "tombstoned"}
FHIR_MEDIA_TYPE = "application/fhir+json"


@dataclass(frozen=True)
class Identity:
    """Who the client acts as: a wallet (signs transactions and consent) and X25519 keys by version."""

    account: LocalAccount
    x25519: Mapping[int, bytes] = field(repr=False)
    umbral: Mapping[int, bytes] = field(default_factory=dict, repr=False)

    @property
    def address(self) -> str:
        return str(self.account.address)

    @property
    def current_umbral_key(self) -> tuple[int, bytes]:
        """(local version, secret) of the newest Umbral key (proxy re-encryption)."""
        if not self.umbral:
            raise KeyNotFound("this identity has no Umbral key; create one (`ehr custodian umbral-key`) first")
        version = max(self.umbral)
        return version, self.umbral[version]

    def umbral_secret_for(self, public_key: bytes) -> bytes | None:
        """The Umbral secret whose public key is `public_key`, if this identity holds it."""
        for secret in self.umbral.values():
            if umbral_public_key(secret) == bytes(public_key):
                return secret
        return None

    @property
    def current_key(self) -> tuple[int, bytes]:
        if not self.x25519:
            raise KeyNotFound("this identity has no X25519 key; run `ehr keys new` first")
        version = max(self.x25519)
        return version, self.x25519[version]

    @classmethod
    def generate(cls) -> Identity:
        """A fresh wallet, X25519 key and Umbral key, held in memory only (tests, demos)."""
        return cls(Account.create(), {1: generate_x25519_keypair().private_key},
                   {1: bytes(umbral_pre.SecretKey.random().to_be_bytes())})

    @classmethod
    def from_private_keys(
        cls, wallet_key: bytes | str, x25519_keys: Mapping[int, bytes], umbral_keys: Mapping[int, bytes] | None = None
    ) -> Identity:
        return cls(Account.from_key(wallet_key), dict(x25519_keys), dict(umbral_keys or {}))

    @classmethod
    def from_keystore(cls, keystore: Keystore, wallet: str, password: str) -> Identity:
        """Unlock the wallet and every X25519 and Umbral key version (old versions open old records)."""
        account = keystore.load_wallet(wallet, password)
        infos = keystore.list()
        keys = {
            info.version: keystore.load_encryption_key("x25519", password, version=info.version).secret
            for info in infos
            if info.kind == "x25519"
        }
        umbral = {
            info.version: keystore.load_encryption_key("umbral", password, version=info.version).secret
            for info in infos
            if info.kind == "umbral"
        }
        return cls(account, keys, umbral)


@dataclass(frozen=True)
class RecordInfo:
    """What the chain says about one record version."""

    record_id: bytes
    patient: str
    author: str
    scope: int
    status: str
    content_hash: bytes
    cid: Cid
    previous_id: bytes | None
    block_number: int
    timestamp: int
    tx_hash: str


@dataclass(frozen=True)
class WriteResult:
    """A stored and anchored record. `tx` is None when a retry found an earlier anchor mined."""

    record_id: bytes
    cid: Cid
    content_hash: bytes
    tx: TxResult | None
    reused_pending: bool = False


@dataclass(frozen=True)
class ReadResult:
    info: RecordInfo
    media_type: str
    data: bytes = field(repr=False)

    def resource(self) -> dict[str, Any]:
        """The FHIR resource as a dict (FHIR records only)."""
        if self.media_type != FHIR_MEDIA_TYPE:
            raise InvalidRecord(f"record is {self.media_type}, not FHIR JSON")
        resource: dict[str, Any] = json.loads(self.data)
        return resource


@dataclass(frozen=True)
class SignedConsent:
    """A patient's signed grant or revocation, ready for anyone to relay; carries the key share.

    `typed_data` is exactly what the wallet signed (`eth_signTypedData_v4`), rebuilt from its
    checked fields; `domain` and `message` are those fields.
    """

    typed_data: dict[str, Any]
    signature: bytes
    key_share: Cid | None = None

    @property
    def domain(self) -> Domain:
        return parse_typed_data(self.typed_data)[0]

    @property
    def message(self) -> GrantMessage | RevokeMessage:
        return parse_typed_data(self.typed_data)[1]

    def to_json(self) -> str:
        return json.dumps(
            {"typedData": self.typed_data, "signature": "0x" + self.signature.hex(), "keyShare": self.key_share},
            indent=2,
        )

    @classmethod
    def from_parts(cls, typed_data: object, signature: str, key_share: object = None) -> SignedConsent:
        """A consent from typed data and a signature made elsewhere (a browser or hardware wallet).

        Raises:
            InvalidRecord: the typed data is not one of our Grant or Revoke documents, the signature
                is not 65 bytes of hex, or the key share is not a string.
        """
        domain, message = parse_typed_data(typed_data)
        try:
            raw = bytes.fromhex(signature.removeprefix("0x"))
        except (ValueError, AttributeError):
            raw = b""
        if len(raw) != 65:
            raise InvalidRecord("the signature must be 65 bytes of hex (0x…, 130 hex digits), as the wallet returned it")
        if not (key_share is None or isinstance(key_share, str)):
            raise InvalidRecord("keyShare must be a CID string")
        return cls(rebuild_typed_data(domain, message), raw, None if key_share is None else Cid(key_share))

    @classmethod
    def from_json(cls, text: str, *, signature: str | None = None) -> SignedConsent:
        """Parse a consent file: `{"typedData", "signature", "keyShare"}` as `--sign-only` writes it,
        or bare typed data (as `--print-typed-data` prints it) with `signature` given separately,
        which then replaces any signature in the file.

        Raises:
            InvalidRecord: anything else; the message says what is wrong.
        """
        try:
            doc = load_untrusted(text, max_depth=8, max_bytes=1024 * 1024)
        except ValueError:
            raise InvalidRecord("the consent file is not JSON; use the file `ehr grant --sign-only` wrote") from None
        if isinstance(doc, dict) and "typedData" in doc:
            given = signature if signature is not None else doc.get("signature")
            if not isinstance(given, str):
                raise InvalidRecord("the consent file has no signature; pass the wallet's with --signature 0x…")
            return cls.from_parts(doc["typedData"], given, doc.get("keyShare"))
        if signature is None:
            raise InvalidRecord("this file is typed data without a signature; pass the wallet's with --signature 0x…")
        return cls.from_parts(doc, signature)

@dataclass(frozen=True)
class GrantResult:
    tx: TxResult | None
    key_share: Cid | None
    shared_records: int


class KeyRelease(Protocol):
    """Where a reader without a wrap in the keyring gets a record's data key (audited release).

    Called after the access request was mined; `access` is that transaction, which custodians
    look up on chain.
    """

    def data_key(self, info: RecordInfo, header: PackageHeader, access: TxResult) -> bytes: ...


@dataclass(frozen=True)
class VerifyResult:
    record_id: bytes
    ok: bool
    problem: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    """One on-chain fact about a patient's records, with block time and transaction."""

    timestamp: int
    block_number: int
    log_index: int
    tx_hash: str
    event: str
    actor: str
    record_id: bytes | None
    detail: str


def _scopes(bits: int) -> str:
    return ",".join(describe(int(bits)))


def _hex(record_id: bytes) -> str:
    return "0x" + record_id.hex()


class EHRClient:
    """Encrypt, store, anchor, share, read and verify a patient's records."""

    def __init__(self, chain: ChainClient, store: BlobStore, identity: Identity, *, state_dir: Path) -> None:
        self.chain = chain
        self.store = store
        self.identity = identity
        self.state_dir = Path(state_dir)
        self.journal = Journal(self.state_dir, hashlib.sha256(b"ehr-journal" + identity.current_key[1]).digest())
        self._umbral_keys: dict[str, tuple[float, tuple[int, bytes] | None]] = {}

    @property
    def address(self) -> str:
        return self.identity.address

    def consent_domain(self) -> Domain:
        """The EIP-712 domain of this deployment's ConsentManager, as the contract reports it."""
        return deployed_domain(self.chain.consent, lambda fn: self.chain.call(fn, action="read consent domain"))

    # --- identity and keys -----------------------------------------------------------------

    def register_patient(self) -> TxResult:
        return self.chain.transact(self.identity.account, self.chain.records.functions.registerPatient(),
                                   action="register patient")

    def publish_key(self) -> int:
        """Publish this identity's current X25519 public key; returns its on-chain version."""
        _, private = self.identity.current_key
        fn = self.chain.keys.functions.publishKey(X25519_KEY_TYPE, x25519_public_key(private))
        result = self.chain.transact(self.identity.account, fn, action="publish encryption key")
        return int(self.chain.events_in(result, "KeyRegistry", "KeyPublished")[0]["version"])

    def publish_umbral_key(self) -> int:
        """Publish this identity's newest Umbral public key (KeyType.Umbral); returns its on-chain version.

        Records written for this account from then on carry the data key encrypted to it, so it
        can delegate reading through key custodians. A no-op when it is already the current key.
        """
        public = umbral_public_key(self.identity.current_umbral_key[1])
        current = self.umbral_key_of(self.address)
        if current is not None and current[1] == public:
            return current[0]
        fn = self.chain.keys.functions.publishKey(UMBRAL_KEY_TYPE, public)
        result = self.chain.transact(self.identity.account, fn, action="publish Umbral key")
        self._umbral_keys.pop(self.address, None)
        return int(self.chain.events_in(result, "KeyRegistry", "KeyPublished")[0]["version"])

    def umbral_key_of(self, account: str) -> tuple[int, bytes] | None:
        """(on-chain version, compressed public key) of `account`'s current Umbral key, or None."""
        try:
            version, key = self.chain.call(
                self.chain.keys.functions.currentKey(to_checksum_address(account), UMBRAL_KEY_TYPE),
                action="look up Umbral key",
            )
        except TransactionReverted:
            return None
        return int(version), bytes(key)

    def umbral_key_at(self, account: str, version: int) -> bytes:
        """A published Umbral key version of `account`, revoked or not (old records name old versions)."""
        try:
            key = self.chain.call(
                self.chain.keys.functions.keyAt(to_checksum_address(account), UMBRAL_KEY_TYPE, version),
                action="look up Umbral key version",
            )
        except TransactionReverted:
            raise KeyNotFound(f"{account} never published Umbral key version {version}") from None
        return bytes(key[0])

    def encryption_key_of(self, account: str) -> tuple[int, bytes]:
        """The current, non-revoked X25519 key a reader published."""
        try:
            version, key = self.chain.call(
                self.chain.keys.functions.currentKey(to_checksum_address(account), X25519_KEY_TYPE),
                action="look up encryption key",
            )
        except TransactionReverted:
            raise KeyNotFound(
                f"{account} has no active encryption key on chain; they must publish one (`ehr keys publish`)"
            ) from None
        return int(version), bytes(key)

    # --- writing ---------------------------------------------------------------------------

    def add_record(
        self,
        patient: str,
        source: Mapping[str, Any] | str | bytes | os.PathLike[str],
        *,
        category: str | None = None,
        scope: int | None = None,
    ) -> WriteResult:
        """Validate, encrypt, store and anchor a new record for `patient`.

        `source` is a FHIR resource (dict, JSON text or bytes, or a path to a JSON file), or with
        `category` ("pdf", "dicom", "genomic", ...) an opaque file (bytes or path) streamed in
        bounded memory.
        """
        return self._write(to_checksum_address(patient), source, category=category, scope=scope, previous=None)

    def amend_record(
        self,
        previous_id: bytes,
        source: Mapping[str, Any] | str | bytes | os.PathLike[str],
        *,
        category: str | None = None,
    ) -> WriteResult:
        """Anchor a new version of a record; the old version stays readable as history."""
        previous = self.get_record(previous_id)
        if previous.status != "active":
            raise InvalidRecord(f"record {_hex(previous_id)} is {previous.status}; amend its latest active version")
        return self._write(previous.patient, source, category=category, scope=previous.scope, previous=previous)

    def _prepare(
        self, source: Mapping[str, Any] | str | bytes | os.PathLike[str], category: str | None, scope: int | None
    ) -> tuple[int, str, bytes | BinaryIO, bytes]:
        """(scope, media type, plaintext source, sha256 of the plaintext)."""
        if category is None:
            validated = validate_fhir(source)  # type: ignore[arg-type]
            record_scope = int(validated.scope) if scope is None else scope
            return record_scope, FHIR_MEDIA_TYPE, validated.canonical, hashlib.sha256(validated.canonical).digest()
        if isinstance(source, Mapping) or isinstance(source, str):
            raise InvalidRecord("an opaque file record takes bytes or a path, not JSON")
        opaque = load_opaque(source, category, scope=Scope(scope) if scope is not None else None)
        digest = hashlib.sha256()
        with opaque.open() as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return int(opaque.scope), opaque.media_type, opaque.data if opaque.data is not None else opaque.open(), \
            digest.digest()

    def _write(
        self,
        patient: str,
        source: Mapping[str, Any] | str | bytes | os.PathLike[str],
        *,
        category: str | None,
        scope: int | None,
        previous: RecordInfo | None,
        prepared: tuple[int, str, bytes | BinaryIO, bytes] | None = None,
    ) -> WriteResult:
        record_scope, media_type, plaintext, plain_hash = prepared or self._prepare(source, category, scope)
        if not self.chain.call(self.chain.records.functions.isPatient(patient), action="check patient"):
            raise InvalidRecord(f"{patient} is not a registered patient; they must run `ehr patient register`")
        if not self.chain.call(
            self.chain.consent.functions.canAmend(patient, self.address, record_scope), action="check write permission"
        ):
            raise AccessDenied(
                f"{self.address} may not write records of {patient} in scope {_scopes(record_scope)}: "
                "an amend grant from the patient and an active provider/lab membership are needed"
            )
        previous_id = previous.record_id if previous else None
        fingerprint = self.journal.fingerprint(
            bytes.fromhex(patient[2:]), record_scope.to_bytes(8, "big"), previous_id or b"", plain_hash
        )
        pending = self.journal.get(fingerprint)
        if pending is not None and self.store.has(Cid(pending.cid)):
            log.info("reusing stored, unanchored record %s", pending.record_id)
            record_id = bytes.fromhex(pending.record_id[2:])
            cid, content_hash = Cid(pending.cid), bytes.fromhex(pending.content_hash[2:])
            reused = True
            if self._anchored(record_id):
                self.journal.done(fingerprint)
                return WriteResult(record_id, cid, content_hash, None, reused)
        else:
            record_id = secrets.token_bytes(32)
            version = self._version_after(previous)
            cid, content_hash = self._store_package(patient, record_id, version, media_type, plaintext)
            self.journal.put(
                fingerprint,
                PendingWrite(_hex(record_id), patient, cid, _hex(content_hash), record_scope,
                             _hex(previous_id) if previous_id else None),
            )
            reused = False
        tx = self._anchor(record_id, patient, content_hash, record_scope, cid, previous_id)
        self.journal.done(fingerprint)
        log.info("anchored record %s in tx %s", _hex(record_id), tx.tx_hash)
        return WriteResult(record_id, cid, content_hash, tx, reused)

    def _anchored(self, record_id: bytes) -> bool:
        try:
            self.chain.call(self.chain.records.functions.getRecord(record_id), action="look up record")
        except RecordNotFound:
            return False
        return True

    def _version_after(self, previous: RecordInfo | None) -> int:
        if previous is None:
            return 1
        header = self._read_header(previous.cid)
        return header.version + 1

    def _store_package(
        self, patient: str, record_id: bytes, version: int, media_type: str, plaintext: bytes | BinaryIO, *,
        patient_key: tuple[int, bytes] | None = None,
    ) -> tuple[Cid, bytes]:
        """Encrypt and store one record version; returns its CID and the sha256 to anchor.

        `patient_key` is the patient's on-chain X25519 key (version, public key) when the caller
        already looked it up (a batch looks it up once, not once per record).
        """
        readers = {patient, self.address}
        data_key = generate_data_key()
        aad = record_associated_data(record_id, version)
        wraps = []
        for reader in sorted(readers):
            if reader == self.address:
                key_version, private = self.identity.current_key
                public = x25519_public_key(private)
            else:
                key_version, public = patient_key or self.encryption_key_of(reader)
            wraps.append(Wrap(bytes.fromhex(reader[2:]), key_version, wrap_data_key(data_key, public, associated_data=aad)))
        umbral = self._umbral_seal(patient, record_id, version, data_key)
        header = PackageHeader(version, media_type, tuple(wraps), umbral).to_bytes()

        def package() -> Iterator[bytes]:
            yield header
            yield from iter_encrypt(plaintext, data_key, record_id=record_id, version=version)

        chunks = HashedChunks(package())
        if isinstance(plaintext, bytes):
            blob = b"".join(chunks)
            cid = self.store.put(blob)
        else:
            try:
                cid = self.store.put_stream(chunks)
            finally:
                plaintext.close()
        return cid, chunks.sha256

    def _umbral_seal(self, patient: str, record_id: bytes, version: int, data_key: bytes) -> UmbralSeal | None:
        """The data key encrypted to the patient's Umbral key, when the patient published one.

        The key lookup is cached for a few seconds, so a batch of writes costs one call.
        """
        cached = self._umbral_keys.get(patient)
        if cached is not None and time.monotonic() - cached[0] < UMBRAL_KEY_CACHE_SECONDS:
            published = cached[1]
        else:
            published = self.umbral_key_of(patient)
            self._umbral_keys[patient] = (time.monotonic(), published)
        if published is None:
            return None
        return UmbralSeal.create(published[1], published[0], record_id, version, data_key)

    def _anchor(
        self, record_id: bytes, patient: str, content_hash: bytes, scope: int, cid: Cid, previous_id: bytes | None
    ) -> TxResult:
        records = self.chain.records.functions
        fn = (
            records.amendRecord(previous_id, record_id, content_hash, cid_to_bytes(cid))
            if previous_id
            else records.addRecord(record_id, patient, content_hash, scope, cid_to_bytes(cid))
        )
        return self.chain.transact(self.identity.account, fn, action="anchor record")

    # --- reading ---------------------------------------------------------------------------

    def get_record(self, record_id: bytes) -> RecordInfo:
        """Chain state and the anchoring event of one record version."""
        state = self.chain.call(self.chain.records.functions.getRecord(record_id), action="look up record")
        events = self.chain.get_events("RecordRegistry", "RecordAdded", filters={"recordId": record_id})
        if not events:
            raise RecordNotFound(f"record {_hex(record_id)} has no anchoring event; is the deployment file right?")
        return self._record_info(events[0], state)

    def _record_info(self, event: EventRecord, state: Any) -> RecordInfo:
        args = event.args
        previous = bytes(args["previousId"])
        return RecordInfo(
            record_id=bytes(args["recordId"]),
            patient=str(args["patient"]),
            author=str(args["author"]),
            scope=int(args["scope"]),
            status=STATUS[int(state[2])],
            content_hash=bytes(args["contentHash"]),
            cid=cid_from_bytes(bytes(args["cid"])),
            previous_id=previous if any(previous) else None,
            block_number=event.block_number,
            timestamp=event.timestamp,
            tx_hash=event.tx_hash,
        )

    def list_records(self, patient: str) -> list[RecordInfo]:
        """Every record version of `patient`, oldest first (one log query, one batched call)."""
        events = self.chain.get_events("RecordRegistry", "RecordAdded", filters={"patient": to_checksum_address(patient)})
        states = self.chain.batch_call(
            [self.chain.records.functions.getRecord(bytes(e.args["recordId"])) for e in events], action="list records"
        )
        return [self._record_info(event, state) for event, state in zip(events, states, strict=True)]

    def read_record(
        self, record_id: bytes, *, key_share: Cid | None = None, key_release: KeyRelease | None = None
    ) -> ReadResult:
        """Check permission, record the access on chain, fetch, verify and decrypt one record.

        The data key comes from this reader's wrap in the keyring, else from `key_release`
        (custodians, after the access request), else from the key share.
        """
        info = self.get_record(record_id)
        if info.status == "tombstoned":
            raise RecordErased(f"record {_hex(record_id)} was erased at the patient's request")
        if not self.chain.call(
            self.chain.consent.functions.canRead(info.patient, self.address, info.scope), action="check read permission"
        ):
            raise AccessDenied(
                f"{self.address} may not read record {_hex(record_id)}: no valid grant covers its scope "
                "(never granted, expired, revoked, or membership suspended); ask the patient for consent"
            )
        access = self.chain.transact(self.identity.account, self.chain.consent.functions.requestAccess(record_id),
                                     action="request access")
        blob = self.fetch_verified(info, doing="decrypted")
        header, offset = parse_header(blob)
        own = self._own_data_key(info, header)
        if own is not None:
            data_key = own
        elif key_release is not None:
            data_key = key_release.data_key(info, header, access)
        else:
            data_key = self._data_key(info, header, key_share)
        data = b"".join(iter_decrypt(memoryview(blob)[offset:], data_key, record_id=record_id, version=header.version))
        if header.media_type == FHIR_MEDIA_TYPE:
            validate_fhir(data)
        return ReadResult(info, header.media_type, data)

    def fetch_verified(self, info: RecordInfo, *, doing: str) -> bytes:
        """The stored bytes of a record, only if their sha256 is the one anchored on chain."""
        blob = self.store.get(info.cid)
        if hashlib.sha256(blob).digest() != info.content_hash:
            raise IntegrityError(
                f"the stored data of record {_hex(info.record_id)} does not match the hash anchored on chain; "
                f"it was altered or replaced: nothing was {doing}"
            )
        return blob

    def _own_data_key(self, info: RecordInfo, header: PackageHeader) -> bytes | None:
        """The data key from this reader's wrap in the keyring, if it has one."""
        aad = record_associated_data(info.record_id, header.version)
        me = bytes.fromhex(self.address[2:])
        for wrap in header.wrap_for(me):
            return self._unwrap(wrap.wrapped, wrap.key_version, aad)
        return None

    def _unwrap(self, wrapped: bytes, key_version: int, aad: bytes) -> bytes:
        """Open a key sealed to this identity: the key of the labelled version first, then the others.

        The label is the on-chain version when someone else sealed it and the keystore version when
        we did; the two can drift (a key published twice), so the label is a hint, not a lookup.
        """
        keys = self.identity.x25519
        ordered = [keys[key_version]] if key_version in keys else []
        ordered += [private for version, private in sorted(keys.items(), reverse=True) if version != key_version]
        for private in ordered:
            try:
                return unwrap_data_key(wrapped, private, associated_data=aad)
            except DecryptionError:
                continue
        raise DecryptionError()

    def _data_key(self, info: RecordInfo, header: PackageHeader, key_share: Cid | None) -> bytes:
        aad = record_associated_data(info.record_id, header.version)
        own = self._own_data_key(info, header)
        if own is not None:
            return own
        if key_share is None:
            raise KeyNotFound(
                f"record {_hex(info.record_id)} was not sealed to {self.address} when written; pass the key "
                "share the patient sent with the grant (--key-share)"
            )
        share = KeyShare.from_bytes(self.store.get(key_share))
        entry = share.entry_for(info.record_id)
        if entry is None or to_checksum_address(share.grantee) != self.address or entry.version != header.version:
            raise KeyNotFound(f"the key share does not cover record {_hex(info.record_id)} for {self.address}")
        return self._unwrap(entry.wrapped, entry.key_version, aad)

    def read_header(self, cid: Cid) -> PackageHeader:
        """The package header (keyring, media type, Umbral capsule) of a stored record; no decryption."""
        return self._read_header(cid)

    def _read_header(self, cid: Cid) -> PackageHeader:
        limit = max_header_size()
        buffer = bytearray()
        for chunk in self.store.iter_get(cid):
            buffer += chunk
            if len(buffer) >= limit:
                break
        header, _ = parse_header(bytes(buffer))
        return header

    def reencrypt_record(self, record_id: bytes) -> WriteResult:
        """Key rotation: anchor the same content as a new version under a fresh data key.

        Needs a wrap in the record's keyring (the patient, or the author) and write permission.
        The new version is sealed to the patient and this writer only; sharing it again is the
        caller's job (`ehr_client.audited` re-issues custodian fragments). The old blob stays until
        the caller removes it. Holds the plaintext in memory.
        """
        info = self.get_record(record_id)
        if info.status != "active":
            raise InvalidRecord(f"record {_hex(record_id)} is {info.status}; rotate its latest active version")
        blob = self.fetch_verified(info, doing="rotated")
        header, offset = parse_header(blob)
        data_key = self._own_data_key(info, header)
        if data_key is None:
            raise KeyNotFound(
                f"record {_hex(record_id)} is not sealed to {self.address}; only its patient or author can rotate it"
            )
        data = b"".join(iter_decrypt(memoryview(blob)[offset:], data_key, record_id=record_id, version=header.version))
        prepared = (info.scope, header.media_type, data, hashlib.sha256(data).digest())
        return self._write(info.patient, data, category=None, scope=info.scope, previous=info, prepared=prepared)

    # --- verifying ---------------------------------------------------------------------------

    def verify_record(self, record_id: bytes) -> VerifyResult:
        """Whether the stored bytes still match the chain (no decryption, no access request)."""
        info = self.get_record(record_id)
        return self._verify(info)

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

    # --- consent -----------------------------------------------------------------------------

    def grant(
        self, grantee: str, scopes: int, *, access: str = "read", expires_at: int, share_keys: bool = True,
        purpose: str = DEFAULT_PURPOSE,
    ) -> GrantResult:
        """Grant `grantee` access to the caller's records in `scopes` for `purpose`, and share their keys."""
        grantee = to_checksum_address(grantee)
        fn = self.chain.consent.functions.grant(grantee, scopes, ACCESS[access], expires_at, parse_purpose(purpose).word)
        # Terms the chain would refuse fail first; then the share, so a grantee without a usable
        # key fails the call before anything is granted.
        self.chain.simulate(self.address, fn, action="grant access")
        share, count = self.share_keys(grantee, scopes) if share_keys else (None, 0)
        tx = self.chain.transact(self.identity.account, fn, action="grant access")
        return GrantResult(tx, share, count)

    def grant_document(
        self, grantee: str, scopes: int, *, access: str = "read", purpose: str = DEFAULT_PURPOSE, expires_at: int,
        deadline: int,
    ) -> dict[str, Any]:
        """The EIP-712 grant for the caller to sign (in any wallet) at the pair's current nonce."""
        grantee = to_checksum_address(grantee)
        if access not in ACCESS:
            raise InvalidRecord(f"access must be one of {', '.join(ACCESS)}")
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
        `deadline` is the signature's `signatureValidUntil`, `expires_at` the grant's `grantEndsAt`."""
        typed = self.grant_document(grantee, scopes, access=access, purpose=purpose, expires_at=expires_at,
                                    deadline=deadline)
        share = self.share_keys(to_checksum_address(grantee), scopes)[0] if share_keys else None
        return SignedConsent(typed, sign_typed_data(self.identity.account.key, typed), share)

    def _check_signed(self, signed: SignedConsent, kind: type[GrantMessage] | type[RevokeMessage]) -> Any:
        """The message of `signed` once it is of `kind`, made for this deployment and signed by its
        patient; a relayer pays no gas for a consent the chain would refuse."""
        domain, message = parse_typed_data(signed.typed_data)
        if not isinstance(message, kind):
            raise InvalidRecord(f"this signed consent is a {type(message).__name__[:-7].lower()}, "
                                f"not a {kind.__name__[:-7].lower()}")
        check_domain(domain, self.consent_domain())
        signer = recover_typed_data_signer(rebuild_typed_data(domain, message), signed.signature)
        if signer != message.patient:
            raise ConsentRefused(f"the signature is by {signer}, not by patient {message.patient}, over these exact "
                                 "fields (altered after signing, or signed by another wallet)")
        return message

    def relay_grant(self, signed: SignedConsent) -> TxResult:
        """Submit a patient's signed grant (anyone may; the relayer cannot alter it).

        Raises:
            AlreadyRelayed: this very grant is already in force.
            ConsentRefused: another deployment, another signer, a used nonce, past its validity.
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
        return self.chain.transact(self.identity.account, fn, action="relay signed grant")

    def revoke(self, grantee: str) -> TxResult:
        fn = self.chain.consent.functions.revoke(to_checksum_address(grantee))
        return self.chain.transact(self.identity.account, fn, action="revoke access")

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
        _, _, access, nonce, _, _ = self.chain.call(
            self.chain.consent.functions.getGrant(m.patient, m.grantee), action="read grant")
        if access == 0 and nonce > m.nonce:
            raise AlreadyRelayed(f"already relayed: no grant by {m.patient} to {m.grantee} is in force; "
                                 "nothing to revoke")
        fn = self.chain.consent.functions.revokeBySig(m.patient, m.grantee, m.nonce, m.signature_valid_until,
                                                      signed.signature)
        return self.chain.transact(self.identity.account, fn, action="relay signed revocation")

    def share_keys(self, grantee: str, scopes: int) -> tuple[Cid | None, int]:
        """Seal the data keys of the caller's active records within `scopes` (single and batched) to
        `grantee`, store the key share, and return its CID and how many records it covers."""
        from ehr_client.batch import share_keys

        return share_keys(self, grantee, scopes)

    # --- audit ----------------------------------------------------------------------------------

    def audit_trail(self, patient: str) -> list[AuditEntry]:
        """Every fact about `patient`'s records and consent (writes, amendments, erasures, grants,
        revocations, reads, break-glass), from the local audit index, brought up to date first."""
        from ehr_client.audit import AuditIndex

        with AuditIndex.open(self.chain, self.state_dir / "audit") as index:
            index.sync()
            return [row.to_audit_entry() for row in index.trail(patient=patient)]

def umbral_public_key(secret: bytes) -> bytes:
    """The compressed (33-byte) public key of an Umbral secret key."""
    return bytes(umbral_pre.SecretKey.from_be_bytes(secret).public_key().to_compressed_bytes())


def plaintext_stream(data: bytes) -> BinaryIO:
    """A binary file over `data` (helper for callers that want the streaming path)."""
    return io.BytesIO(data)


__all__ = [
    "AuditEntry", "EHRClient", "GrantResult", "Identity", "KeyRelease", "ReadResult", "RecordInfo", "SignedConsent",
    "VerifyResult", "WriteResult", "DecryptionError",
]
