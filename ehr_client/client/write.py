"""The write pipeline: validate, encrypt bound to the record's on-chain identity, store, anchor.

The record id is fixed before anything is encrypted: `record_id_of(author, salt)`, with the salt
an HMAC of the write's fingerprint (patient, scope, previous version, sha256 of the plaintext)
under a key derived from the author's wallet. So a retry of the same write, after a crash, a lost
journal or a timeout, can only land as the same record, and no one else can take its id: the
contract derives the id from the sender. The journal (`ehr_client.journal`) keeps the stored blob
until the anchor is mined, so a retry reuses it rather than storing another.

`seal` is the seam the batch writer uses: one package format, one binding, one sealing path.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, BinaryIO

from ehr_client.chain.calls import Call, call_request, decoded, rpc_batch
from ehr_client.chain.client import ChainClient, TxResult
from ehr_client.chain.ids import record_id_of
from ehr_client.client.directory import KeyDirectory
from ehr_client.client.model import FHIR_MEDIA_TYPE, Identity, RecordInfo, WriteResult, hex_id
from ehr_client.crypto import HashedChunks, KeyWrapper, x25519_public_key
from ehr_client.chain.types import Status
from ehr_client.errors import (
    AccessDenied,
    EHRError,
    IntegrityError,
    InvalidRecord,
    RecordErased,
    StorageUnavailable,
    TransactionReverted,
)
from ehr_client.journal import Journal, PendingWrite
from ehr_client.package import Recipients, RecordBinding, sealed_package
from ehr_client.records import Scope, describe, load_opaque, validate_fhir
from ehr_client.storage import BlobStore, Cid, cid_from_bytes, cid_to_bytes

log = logging.getLogger("ehr_client")

Source = Mapping[str, Any] | str | bytes | os.PathLike[str]
_SALT_KEY_LABEL = b"ehr-record-salt/1"


@dataclass(frozen=True)
class Prepared:
    """A validated record ready to encrypt: its scope, media type, plaintext and plaintext sha256.

    `reopen` gives a fresh stream of an opaque file's bytes (None for records held in memory).
    """

    scope: int
    media_type: str
    plaintext: bytes | None
    plain_hash: bytes
    reopen: Callable[[], BinaryIO] | None = None

    def source(self) -> bytes | BinaryIO:
        if self.plaintext is not None:
            return self.plaintext
        assert self.reopen is not None
        return self.reopen()


def prepare(source: Source, *, category: str | None = None, scope: int | None = None) -> Prepared:
    """Validate a FHIR resource (or check an opaque file against its category) before any key is used."""
    if category is None:
        validated = validate_fhir(source)  # type: ignore[arg-type]
        record_scope = int(validated.scope) if scope is None else scope
        return Prepared(record_scope, FHIR_MEDIA_TYPE, validated.canonical, hashlib.sha256(validated.canonical).digest())
    if isinstance(source, (Mapping, str)):
        raise InvalidRecord("an opaque file record takes bytes or a path, not JSON")
    opaque = load_opaque(source, category, scope=Scope(scope) if scope is not None else None)
    if opaque.data is not None:
        return Prepared(int(opaque.scope), opaque.media_type, opaque.data, hashlib.sha256(opaque.data).digest())
    digest = hashlib.sha256()
    with opaque.open() as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return Prepared(int(opaque.scope), opaque.media_type, None, digest.digest(), opaque.open)


def scope_names(bits: int) -> str:
    return ",".join(describe(int(bits)))


class RecordWriter:
    def __init__(self, chain: ChainClient, store: BlobStore, identity: Identity, journal: Journal,
                 directory: KeyDirectory) -> None:
        self.chain = chain
        self.store = store
        self.identity = identity
        self.journal = journal
        self.directory = directory
        self._salt_key = hashlib.sha256(_SALT_KEY_LABEL + bytes(identity.account.key)).digest()
        self._own_public: tuple[bytes, bytes] | None = None  # (private, public) of the author's current key

    @property
    def address(self) -> str:
        return self.identity.address

    def salt(self, fingerprint: str) -> bytes:
        return hmac.new(self._salt_key, bytes.fromhex(fingerprint), hashlib.sha256).digest()

    # --- sealing (shared with the batch writer) -----------------------------------------------

    def recipients(self, patient: str, *, patient_key: tuple[int, bytes] | None = None) -> Recipients:
        """Whom a record of `patient` is sealed to: the patient (`patient_key`, looked up when not
        given) and this author, and the patient's Umbral key when they published one."""
        key_version, private = self.identity.current_key
        if self._own_public is None or self._own_public[0] != private:
            self._own_public = (private, x25519_public_key(private))
        me = bytes.fromhex(self.address[2:])
        readers = {me: (key_version, self._own_public[1])}
        patient_bytes = bytes.fromhex(patient[2:])
        if patient_bytes != me:
            readers[patient_bytes] = patient_key or self.directory.encryption_key_of(patient)
        return Recipients(readers, self.directory.umbral_key_of(patient, cached=True))

    def seal(
        self, binding: RecordBinding, media_type: str, plaintext: bytes | BinaryIO, *,
        patient_key: tuple[int, bytes] | None = None, recipients: Recipients | None = None,
        wrapper: KeyWrapper | None = None,
    ) -> tuple[Cid, bytes]:
        """Encrypt and store one record version bound to `binding`; returns its CID and the sha256 to anchor.

        The data key is sealed to `recipients`, by default `self.recipients(patient, patient_key=...)`,
        through `wrapper` when one batch's records share it.
        """
        if recipients is None:
            recipients = self.recipients("0x" + binding.patient.hex(), patient_key=patient_key)
        chunks = HashedChunks(sealed_package(binding, media_type, plaintext, recipients, wrapper=wrapper))
        try:
            cid = self.store.put(b"".join(chunks)) if isinstance(plaintext, bytes) else self.store.put_stream(chunks)
        finally:
            chunks.pause()
            if not isinstance(plaintext, bytes):
                plaintext.close()
        return cid, chunks.sha256

    # --- single writes -------------------------------------------------------------------------

    def write(self, patient: str, prepared: Prepared, *, previous: RecordInfo | None, version: int) -> WriteResult:
        """Store and anchor one record (or a new version of `previous`); see the module docstring."""
        self.chain.ensure_chain()
        scope = prepared.scope
        previous_id = previous.record_id if previous else None
        fingerprint = self.journal.fingerprint(
            bytes.fromhex(patient[2:]), scope.to_bytes(8, "big"), previous_id or b"", prepared.plain_hash
        )
        salt = self.salt(fingerprint)
        record_id = record_id_of(self.address, salt)
        checks = [
            Call(self.chain.records, "isPatient", (patient,)),
            Call(self.chain.consent, "canAmend", (patient, self.address, scope)),
            Call(self.chain.records, "recordStatus", (record_id,)),
        ]
        key_calls = self.directory.key_calls(patient)  # asked now, in the same round trip, used when sealing
        answers = rpc_batch(self.chain, [call_request(c) for c in checks + key_calls])
        registered, allowed, status = (decoded(c, a, action="check write permission")
                                       for c, a in zip(checks, answers, strict=False))
        if int(status) != 0:
            result = self._already_anchored(record_id, patient, scope, previous_id, None, Status(int(status)))
            if self.journal.get(fingerprint) is not None:  # a crash between mined and done: finish the bookkeeping
                self._acknowledged(fingerprint, PendingWrite(hex_id(record_id), patient, result.cid,
                                                             hex_id(result.content_hash), scope,
                                                             hex_id(previous_id) if previous_id else None,
                                                             hex_id(salt)))
            return replace(result, salt=salt)
        if not registered:
            raise InvalidRecord(f"{patient} is not a registered patient; they must run `ehr patient register`")
        if not allowed:
            raise AccessDenied(
                f"{self.address} may not write records of {patient} in scope {scope_names(scope)}: an amend grant "
                "from the patient and an active provider/lab membership are needed"
            )
        pending = self.journal.get(fingerprint)
        if pending is not None and pending.record_id == hex_id(record_id) and self._intact(pending):
            log.info("reusing stored, unanchored record %s", pending.record_id)
            cid, content_hash, reused = Cid(pending.cid), bytes.fromhex(pending.content_hash[2:]), True
        else:  # nothing stored yet, or a pending entry that no longer matches its blob: seal afresh
            binding = RecordBinding.of(record_id, version, patient, scope, self.address)
            patient_key = self.directory.from_answers(patient, key_calls, answers[len(checks):],
                                                      need_encryption_key=patient.lower() != self.address.lower())
            cid, content_hash = self.seal(binding, prepared.media_type, prepared.source(), patient_key=patient_key)
            pending = PendingWrite(hex_id(record_id), patient, cid, hex_id(content_hash), scope,
                                   hex_id(previous_id) if previous_id else None, hex_id(salt))
            try:
                self.journal.put(fingerprint, pending)
            except StorageUnavailable:
                self.store.remove(cid)  # unjournaled, the blob would be an orphan (and it takes the space)
                raise
            reused = False
        try:
            tx = self._anchor(salt, patient, content_hash, scope, cid, previous)
        except TransactionReverted as exc:
            if getattr(exc, "error_name", None) != "RecordIdUnavailable":
                raise
            # An earlier attempt of this same write was mined meanwhile (the id is ours alone).
            result = self._already_anchored(record_id, patient, scope, previous_id, cid, Status.ACTIVE)
            self._acknowledged(fingerprint, PendingWrite(hex_id(record_id), patient, result.cid,
                                                         hex_id(result.content_hash), scope, pending.previous_id,
                                                         hex_id(salt)))
            return replace(result, salt=salt)
        try:
            self._acknowledged(fingerprint, PendingWrite(hex_id(record_id), patient, cid, hex_id(content_hash), scope,
                                                         hex_id(previous_id) if previous_id else None, hex_id(salt)))
        except StorageUnavailable as exc:
            raise type(exc)(
                f"record {hex_id(record_id)} was anchored (tx {tx.tx_hash}) but not acknowledged: {exc}. Write it "
                "again once there is space: it reports that same record and acknowledges it"
            ) from None
        log.info("anchored record %s in tx %s", hex_id(record_id), tx.tx_hash)
        return WriteResult(record_id, cid, content_hash, tx, reused, scope, salt)

    def _acknowledged(self, fingerprint: str, entry: PendingWrite) -> None:
        self.journal.acknowledge(entry)
        self.journal.done(fingerprint)

    def _intact(self, pending: PendingWrite) -> bool:
        """Whether a pending entry's blob is stored and hashes to what the entry says (a damaged entry
        must never be anchored: the id is fixed, so a wrong hash could never be corrected)."""
        try:
            return hashlib.sha256(self.store.get(Cid(pending.cid))).digest() == bytes.fromhex(pending.content_hash[2:])
        except (EHRError, ValueError):
            return False

    def _anchor(self, salt: bytes, patient: str, content_hash: bytes, scope: int, cid: Cid,
                previous: RecordInfo | None) -> TxResult:
        records = self.chain.records.functions
        pointer = cid_to_bytes(cid)
        if previous is None:
            fn = records.addRecord(salt, patient, content_hash, scope, pointer)
        elif previous.batch is not None and previous.status == "active" and not self._stored(previous.record_id):
            fn = records.amendBatchedRecord(previous.batch.as_arg(), salt, content_hash, pointer)
        else:
            fn = records.amendRecord(previous.record_id, salt, content_hash, pointer)
        return self.chain.transact(self.identity.account, fn, action="anchor record")

    def _stored(self, record_id: bytes) -> bool:
        return int(self.chain.call(self.chain.records.functions.recordStatus(record_id), action="look up record")) != 0

    def _already_anchored(self, record_id: bytes, patient: str, scope: int, previous_id: bytes | None,
                          unused_blob: Cid | None, status: Status) -> WriteResult:
        """The record this write already landed as; anything else under its id is an integrity failure.
        If that record was erased or amended since, writing the same content again is refused: it
        would silently name a record that is gone or no longer current."""
        events = self.chain.get_events("RecordRegistry", "RecordAdded", filters={"recordId": record_id})
        if not events:
            raise IntegrityError(f"record id {hex_id(record_id)} has state on chain but no anchoring event")
        args = events[0].args
        previous = bytes(args["previousId"])
        same = (str(args["author"]) == self.address and str(args["patient"]) == patient
                and int(args["scope"]) == scope and previous == (previous_id or bytes(32)))
        if not same:
            raise IntegrityError(
                f"record id {hex_id(record_id)} is anchored with other terms than this write; nothing was anchored"
            )
        anchored_cid = cid_from_bytes(bytes(args["cid"]))
        if unused_blob is not None and unused_blob != anchored_cid:
            self.store.remove(unused_blob)
        if status == Status.TOMBSTONED:
            raise RecordErased(f"this content was written before as record {hex_id(record_id)}, which its patient "
                               "erased; it cannot be written again unchanged")
        if status == Status.SUPERSEDED:
            raise InvalidRecord(f"this content was written before as record {hex_id(record_id)}, since amended; "
                                "amend its latest version instead")
        log.info("record %s was already anchored by an earlier attempt of this write", hex_id(record_id))
        return WriteResult(record_id, anchored_cid, bytes(args["contentHash"]), None, True, scope)
