"""`BatchWriter`: validate, encrypt and store many records, then anchor them with one transaction per batch.

Per batch of up to `batch_size` records: every record is validated and the author's right to write
it checked on chain (patient registered, `canAmend` for its scope, the author an active provider or
lab, the patient's encryption key published) before any of them is stored; each is then encrypted
and stored in the package format `EHRClient.add_record` writes (`EHRClient._store_package`); a
manifest listing the leaves is stored; and one `anchorBatch` transaction anchors the Merkle root with
the manifest's sha256 and CID. Every step is journaled (`ehr_client._batch_journal`), so a crash or a
timeout at any point resumes without duplicate or orphaned blobs when the same write (or `resume`)
runs again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, BinaryIO

from eth_utils import to_checksum_address

from ehr_client._batch_journal import BatchJournal, JournalState, SealedBatch, StoredEntry
from ehr_client._batch_manifest import BatchLeaf, build_manifest, patient_address
from ehr_client._batch_rpc import Call, RpcFailure, call_request, decoded, rpc_batch
from ehr_client.chain.client import TxResult
from ehr_client.client import X25519_KEY_TYPE, EHRClient
from ehr_client.errors import AccessDenied, ConfigError, IntegrityError, InvalidRecord, KeyNotFound, TransactionReverted
from ehr_client.records import describe
from ehr_client.storage import Cid, cid_to_bytes

log = logging.getLogger("ehr_client.batch")

DEFAULT_BATCH_SIZE = 256
MAX_BATCH_SIZE = 1024
_WRITER_ROLES = {1: "provider", 3: "lab"}  # IConsortium.Role values that may anchor batches

Source = Mapping[str, Any] | str | bytes | os.PathLike[str]


@dataclass(frozen=True)
class BatchItem:
    """One record to write: a FHIR resource (dict, JSON text or bytes, path), or with `category` an opaque file."""

    patient: str
    source: Source
    category: str | None = None
    scope: int | None = None


@dataclass(frozen=True)
class BatchResult:
    """One anchored batch. `tx` is None when a resumed write found its anchor already mined."""

    root: bytes
    manifest_cid: Cid
    manifest_hash: bytes
    leaves: tuple[BatchLeaf, ...]
    tx: TxResult | None


@dataclass(frozen=True)
class BatchProgress:
    """Counts so far, passed to a progress callback after each record and each anchor."""

    processed: int
    stored: int
    reused: int
    skipped: int
    anchored: int
    batches: int
    total: int | None = None


@dataclass(frozen=True)
class WriteSummary:
    """What one `write` did: `records` holds the anchored record of each item, in the order given;
    `stored` new blobs, `reused` blobs an interrupted run had stored, `skipped` items an interrupted
    run had already anchored; `batches` the anchors sent (or found mined) by this run."""

    records: tuple[BatchLeaf, ...]
    batches: tuple[BatchResult, ...]
    stored: int
    reused: int
    skipped: int


@dataclass
class _Prepared:
    item: BatchItem
    patient: str
    scope: int
    media_type: str
    plaintext: bytes | None  # None: an opaque file, reopened when it is stored
    fingerprint: str


ProgressCallback = Callable[[BatchProgress], None]


def _chunks(items: Iterable[BatchItem], size: int) -> Iterator[list[BatchItem]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _scopes(bits: int) -> str:
    return ",".join(describe(int(bits)))


VERSION = 1  # a batch holds first versions only


class BatchWriter:
    """Write many records with one anchor transaction per `batch_size` records (1 to 1024)."""

    def __init__(self, client: EHRClient, *, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ConfigError(f"batch size {batch_size} is out of range: use 1 to {MAX_BATCH_SIZE}")
        self.client = client
        self.batch_size = batch_size
        self.journal = BatchJournal(client.state_dir, client.address)

    def write(
        self, items: Iterable[BatchItem], *, progress: ProgressCallback | None = None, total: int | None = None
    ) -> WriteSummary:
        """Write `items`, first finishing whatever an interrupted write left in the journal.

        Raises:
            InvalidRecord: a record is malformed or its patient is not registered (nothing of its batch stored).
            AccessDenied: the author may not write a record's patient and scope, or may not anchor batches.
            KeyNotFound: a patient has not published an encryption key.
            ChainUnavailable: the node is down or the anchor was not mined in time; run the same write again.
        """
        with self.journal.open() as (journal, state):
            run = _Run(self, journal, state, progress, total)
            run.finish_interrupted()
            for chunk in _chunks(items, self.batch_size):
                run.add(chunk)
            run.anchor_pending(final=True)
            journal.finish()
            return run.summary()

    def resume(self, *, progress: ProgressCallback | None = None) -> WriteSummary:
        """Anchor whatever an interrupted write stored, without writing anything new."""
        return self.write((), progress=progress)

    def pending(self) -> list[BatchLeaf]:
        """Records stored by an interrupted write and not anchored yet."""
        with self.journal.open() as (_, state):
            return [entry.leaf for entry in state.pending]

    def discard(self) -> int:
        """Delete the blobs an interrupted write stored but never anchored, and forget it; returns how many.

        A batch whose anchor turns out to have been mined is kept (it exists on chain).
        """
        with self.journal.open() as (journal, state):
            run = _Run(self, journal, state, None, None)
            if state.sealed is not None and run.anchored_by_me(state.sealed.root):
                journal.anchored(state, state.sealed.root)
            for entry in state.pending:
                self.client.store.remove(entry.cid)
            if state.sealed is not None:
                self.client.store.remove(state.sealed.manifest_cid)
            count = len(state.pending)
            journal.finish()
            return count


class _Run:
    """The state of one `write` call."""

    def __init__(self, writer: BatchWriter, journal: BatchJournal, state: JournalState,
                 progress: ProgressCallback | None, total: int | None) -> None:
        self.client = writer.client
        self.chain = writer.client.chain
        self.batch_size = writer.batch_size
        self.journal = journal
        self.state = state
        self.progress = progress
        self.total = total
        self.results: list[BatchResult] = []
        self.occurrences: Counter[tuple[str, int, bytes]] = Counter()
        self.fingerprints: list[str] = []
        self.keys: dict[str, tuple[int, bytes]] = {}
        self.anchored_before = set(state.anchored)
        self.processed = self.stored = self.reused = self.skipped = 0

    def summary(self) -> WriteSummary:
        anchored = self.state.anchored
        records = tuple(anchored[fp].leaf for fp in self.fingerprints)
        return WriteSummary(records, tuple(self.results), self.stored, self.reused, self.skipped)

    def _report(self) -> None:
        if self.progress is not None:
            anchored = sum(len(r.leaves) for r in self.results)
            self.progress(BatchProgress(self.processed, self.stored, self.reused, self.skipped, anchored,
                                        len(self.results), self.total))

    # --- resuming ---------------------------------------------------------------------------------

    def finish_interrupted(self) -> None:
        """Drop journaled records whose blob vanished, then settle a batch whose anchor was sent."""
        missing = [e.fingerprint for e in self.state.pending if not self.client.store.has(e.cid)]
        if missing:
            log.warning("%d journaled records are missing from the store; they will be stored again", len(missing))
            self.journal.dropped(self.state, missing)
        sealed = self.state.sealed
        if sealed is not None:
            if self.anchored_by_me(sealed.root):
                self._anchored(sealed, None)
            else:
                self._resend_anchor(sealed)

    def anchored_by_me(self, root: bytes) -> bool:
        """Whether `root` is anchored on chain, by this author; anchored by anyone else is an error."""
        author, _, anchored_at = self.chain.call(self.chain.records.functions.getBatch(root), action="look up batch")
        if int(anchored_at) == 0:
            return False
        if to_checksum_address(author) != self.client.address:
            raise IntegrityError(
                f"batch root 0x{root.hex()} was anchored by {author}, not by {self.client.address}: the pending "
                "anchor was front-run; `discard` this batch and write its records again"
            )
        return True

    # --- adding records -----------------------------------------------------------------------------

    def add(self, chunk: Sequence[BatchItem]) -> None:
        prepared = [self._prepare(item) for item in chunk]
        anchored = self.state.anchored
        pending = self.state.pending_by_fingerprint()
        new = [p for p in prepared if p.fingerprint not in anchored and p.fingerprint not in pending]
        self.keys.update(check_write_permission(self.client, {(p.patient, p.scope) for p in new}, require_keys=True))
        for p in prepared:
            self.fingerprints.append(p.fingerprint)
            if p.fingerprint in self.anchored_before:
                self.skipped += 1
            elif p.fingerprint in anchored or p.fingerprint in pending:
                self.reused += 1
            else:
                # Stored and journaled one at a time: a blob stored ahead of its journal line
                # would be an orphan after a crash.
                self.journal.stored(self.state, self._seal(p))
                self.stored += 1
            self.processed += 1
            self._report()
            self.anchor_pending(final=False)

    def _prepare(self, item: BatchItem) -> _Prepared:
        patient = patient_address(item.patient)
        scope, media_type, source, plain_hash = self.client._prepare(item.source, item.category, item.scope)
        plaintext = source if isinstance(source, bytes) else None
        if not isinstance(source, bytes):
            source.close()
        key = (patient, scope, plain_hash)
        occurrence = self.occurrences[key]
        self.occurrences[key] += 1
        fingerprint = self.client.journal.fingerprint(
            b"ehr-batch/1", bytes.fromhex(patient[2:]), scope.to_bytes(8, "big"), plain_hash,
            occurrence.to_bytes(8, "big"),
        )
        return _Prepared(item, patient, scope, media_type, plaintext, fingerprint)

    def _seal(self, p: _Prepared) -> StoredEntry:
        plaintext: bytes | BinaryIO
        if p.plaintext is None:
            _, _, plaintext, _ = self.client._prepare(p.item.source, p.item.category, p.item.scope)
        else:
            plaintext = p.plaintext
        record_id = secrets.token_bytes(32)
        cid, content_hash = self.client._store_package(p.patient, record_id, VERSION, p.media_type, plaintext,
                                                       patient_key=self.keys[p.patient])
        return StoredEntry(p.fingerprint, record_id, p.patient, content_hash, p.scope, cid)

    # --- anchoring ------------------------------------------------------------------------------------

    def anchor_pending(self, *, final: bool) -> None:
        while len(self.state.pending) >= self.batch_size or (final and self.state.pending):
            entries = self.state.pending[: self.batch_size]
            manifest = build_manifest(self.client.address, [e.leaf for e in entries])
            data = manifest.to_bytes()
            cid = self.client.store.put(data)
            sealed = SealedBatch(manifest.root, cid, hashlib.sha256(data).digest(), len(entries))
            self.journal.sealed(self.state, sealed)
            self._send_anchor(sealed)

    def _resend_anchor(self, sealed: SealedBatch) -> None:
        """Anchor a batch an interrupted write sealed, after checking the journal still rebuilds it."""
        entries = self.state.pending[: sealed.count]
        manifest = build_manifest(self.client.address, [e.leaf for e in entries])
        data = manifest.to_bytes()
        if manifest.root != sealed.root or hashlib.sha256(data).digest() != sealed.manifest_hash:
            raise ConfigError(
                f"the batch journal in {self.journal.dir} does not rebuild the batch it sealed; move it aside and "
                "check the records it lists before importing again"
            )
        if not self.client.store.has(sealed.manifest_cid):
            self.client.store.put(data)
        self._send_anchor(sealed)

    def _send_anchor(self, sealed: SealedBatch) -> None:
        entries = self.state.pending[: sealed.count]
        check_write_permission(self.client, {(e.patient, e.scope) for e in entries}, require_keys=False,
                               stage="anchoring")
        fn = self.chain.records.functions.anchorBatch(sealed.root, sealed.count, sealed.manifest_hash,
                                                      cid_to_bytes(sealed.manifest_cid))
        try:
            tx: TxResult | None = self.chain.transact(self.client.identity.account, fn, action="anchor batch")
        except TransactionReverted:
            if not self.anchored_by_me(sealed.root):
                raise
            tx = None  # an earlier attempt's transaction was mined in the meantime
        self._anchored(sealed, tx)

    def _anchored(self, sealed: SealedBatch, tx: TxResult | None) -> None:
        leaves = tuple(e.leaf for e in self.state.pending[: sealed.count])
        self.journal.anchored(self.state, sealed.root)
        self.results.append(BatchResult(sealed.root, sealed.manifest_cid, sealed.manifest_hash, leaves, tx))
        log.info("anchored a batch of %d records in tx %s", len(leaves), tx.tx_hash if tx else "(earlier attempt)")
        self._report()


def check_write_permission(
    client: EHRClient, pairs: set[tuple[str, int]], *, require_keys: bool, stage: str = "storing",
) -> dict[str, tuple[int, bytes]]:
    """In one round trip: the author may anchor batches, every patient is registered, and the author may
    write each (patient, scope); with `require_keys`, every patient's current X25519 key, which is returned."""
    if not pairs:
        return {}
    chain, author = client.chain, client.address
    patients = sorted({patient for patient, _ in pairs})
    ordered = sorted(pairs)
    calls = [Call(chain.consortium, "memberOf", (author,))]
    calls += [Call(chain.records, "isPatient", (p,)) for p in patients]
    calls += [Call(chain.consent, "canAmend", (p, author, s)) for p, s in ordered]
    key_calls = [Call(chain.keys, "currentKey", (p, X25519_KEY_TYPE)) for p in patients] if require_keys else []
    answers = rpc_batch(chain, [call_request(c) for c in calls + key_calls])
    action = "check write permission"
    role, suspended, _ = decoded(calls[0], answers[0], action=action)
    if suspended or int(role) not in _WRITER_ROLES:
        raise AccessDenied(
            f"{author} may not anchor batches: only active provider and lab members can; nothing was "
            f"{'stored' if stage == 'storing' else 'anchored'}"
        )
    for patient, answer in zip(patients, answers[1 : 1 + len(patients)], strict=True):
        if not decoded(calls[1], answer, action=action):
            raise InvalidRecord(f"{patient} is not a registered patient; they must run `ehr patient register` "
                                f"(nothing of this batch was {'stored' if stage == 'storing' else 'anchored'})")
    offset = 1 + len(patients)
    for (patient, scope), answer in zip(ordered, answers[offset : offset + len(ordered)], strict=True):
        if not decoded(calls[offset], answer, action=action):
            if stage == "storing":
                raise AccessDenied(
                    f"{author} may not write records of {patient} in scope {_scopes(scope)}: an amend grant from the "
                    "patient and an active provider/lab membership are needed; nothing of this batch was stored"
                )
            raise AccessDenied(
                f"{author} lost the right to write records of {patient} in scope {_scopes(scope)} before the batch "
                "was anchored; nothing was anchored. Once the grant is restored run the write again (it resumes), "
                "or discard the stored records with BatchWriter.discard()"
            )
    keys: dict[str, tuple[int, bytes]] = {}
    if not require_keys:
        return keys
    for patient, call, answer in zip(patients, key_calls, answers[offset + len(ordered):], strict=True):
        if isinstance(answer, RpcFailure):
            raise KeyNotFound(
                f"{patient} has no active encryption key on chain; they must publish one (`ehr keys publish`); "
                "nothing of this batch was stored"
            )
        version, public = decoded(call, answer, action="look up encryption key")
        keys[patient] = (int(version), bytes(public))
    return keys
