"""`BatchWriter`: many records, one anchor transaction per batch of one patient's records.

Batching is a mode of the one write pipeline: every record is prepared (`client.write.prepare`)
and sealed (`RecordWriter.seal`) exactly as a single write does, bound to its on-chain identity.
What differs is the anchor: the records of one patient are collected under a batch key the
author picks, leaf ``i`` gets the id `batched_record_id_of(author, key, i)` before it is
encrypted, and one `anchorBatch` transaction anchors the Merkle root, the patient and the union
of the scopes, the chain checking the author's right to write them. Every step is journaled
(`ehr_client.batch.journal`), so a crash or a timeout at any point resumes without duplicate or
orphaned blobs when the same write (or `resume`) runs again; nobody else can anchor under the
author's batch key, so a pending batch cannot be front-run.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from dataclasses import dataclass

from ehr_client.batch.journal import (
    ANCHORED_NAME,
    BATCHES_NAME,
    BatchJournal,
    JournalState,
    OpenBatch,
    Sealed,
    StoredEntry,
)
from ehr_client.chain.calls import Call, RpcFailure, call_request, decoded, rpc_batch
from ehr_client.chain.client import TxResult
from ehr_client.chain.ids import batch_id_of, batched_record_id_of
from ehr_client.chain.types import KeyType, Role, WRITER_ROLES
from ehr_client.client import EHRClient
from ehr_client.client.manifest import BatchManifest, address, build_manifest
from ehr_client.client.write import Prepared, Source, prepare, scope_names
from ehr_client.crypto import KeyWrapper
from ehr_client.errors import (
    AccessDenied,
    BlobNotFound,
    ChainError,
    ConfigError,
    IntegrityError,
    InvalidRecord,
    KeyNotFound,
    StorageUnavailable,
)
from ehr_client.journal import JournalDamaged
from ehr_client.package import RecordBinding
from ehr_client.storage import Cid, cid_to_bytes

log = logging.getLogger("ehr_client.batch")

DEFAULT_BATCH_SIZE = 256
MAX_BATCH_SIZE = 1024
VERSION = 1  # a batch holds first versions only


@dataclass(frozen=True)
class BatchItem:
    """One record to write: a FHIR resource (dict, JSON text or bytes, path), or with `category` an opaque file."""

    patient: str
    source: Source
    category: str | None = None
    scope: int | None = None


@dataclass(frozen=True)
class BatchRecord:
    """A record anchored in a batch, as the writer knows it."""

    record_id: bytes
    patient: str
    scope: int
    content_hash: bytes
    cid: Cid


@dataclass(frozen=True)
class BatchResult:
    """One anchored batch. `tx` is None when a resumed write found its anchor already mined."""

    batch_id: bytes
    patient: str
    root: bytes
    manifest_cid: Cid
    manifest_hash: bytes
    records: tuple[BatchRecord, ...]
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
    """What one `write` did: `record_ids` holds the anchored record id of each item, in the order given;
    `stored` new blobs, `reused` blobs an interrupted run had stored, `skipped` items already on chain
    from an earlier run; `batches` the anchors sent (or found mined) by this run."""

    record_ids: tuple[bytes, ...]
    batches: tuple[BatchResult, ...]
    stored: int
    reused: int
    skipped: int


ProgressCallback = Callable[[BatchProgress], None]


def _chunks(items: Iterable[BatchItem], size: int) -> Iterator[list[BatchItem]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class BatchWriter:
    """Write many records with one anchor transaction per `batch_size` records of a patient (1 to 1024)."""

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
            InvalidRecord: a record is malformed or its patient is not registered (nothing of it stored).
            AccessDenied: the author may not write a record's patient and scope.
            KeyNotFound: a patient has not published an encryption key.
            ChainUnavailable: the node is down or an anchor was not mined in time; run the same write again.
        """
        with self.journal.open() as (journal, state), self.client.store.group_commit() as barrier:
            run = _Run(self, journal, state, progress, total, barrier)
            run.finish_interrupted()
            journal.check_logs()
            if not (journal.anchored_path.exists() or journal.batches_path.exists()):
                run.check_no_unlogged_batches()
            for chunk in _chunks(items, self.batch_size):
                run.add(chunk)
            run.anchor_all()
            journal.finish(state)
            return run.summary()

    def resume(self, *, progress: ProgressCallback | None = None) -> WriteSummary:
        """Anchor whatever an interrupted write stored, without writing anything new."""
        return self.write((), progress=progress)

    def pending(self) -> list[StoredEntry]:
        """Records stored by an interrupted write and not anchored yet."""
        with self.journal.open() as (_, state):
            return [e for b in state.batches.values() for e in b.entries]

    def discard(self) -> int:
        """Delete the blobs an interrupted write stored but never anchored, and forget them; returns how many.

        A batch whose anchor turns out to have been mined is kept (it exists on chain).
        """
        with self.journal.open() as (journal, state):
            run = _Run(self, journal, state, None, None, None)
            count = 0
            for batch in list(state.batches.values()):
                if batch.sealed is not None and run.anchored_on_chain(batch):
                    run.settle(batch, None)
                    continue
                for entry in batch.entries:
                    self.client.store.remove(entry.cid)
                if batch.sealed is not None:
                    self.client.store.remove(batch.sealed.manifest_cid)
                count += len(batch.entries)
                journal.abandoned(state, batch)
            journal.finish(state)
            return count


class _Run:
    """The state of one `write` call."""

    def __init__(self, writer: BatchWriter, journal: BatchJournal, state: JournalState,
                 progress: ProgressCallback | None, total: int | None, barrier: Callable[[], int] | None) -> None:
        self.client = writer.client
        self.barrier = barrier  # a group commit: blobs and their journal lines are synced per batch
        self.chain = writer.client.chain
        self.batch_size = writer.batch_size
        self.journal = journal
        self.state = state
        self.progress = progress
        self.total = total
        self.results: list[BatchResult] = []
        self.occurrences: Counter[tuple[str, int, bytes]] = Counter()
        self.order: list[str] = []
        self.done = journal.anchored_fingerprints()
        self.anchored_before = set(self.done)
        self.interrupted: set[str] = set()
        self.keys: dict[str, tuple[int, bytes]] = {}
        self.wrappers: dict[bytes, KeyWrapper] = {}  # batch key -> the wrapper its records' data keys share
        self.processed = self.stored = self.reused = self.skipped = 0

    def summary(self) -> WriteSummary:
        return WriteSummary(tuple(self.done[fp] for fp in self.order), tuple(self.results), self.stored,
                            self.reused, self.skipped)

    def _report(self) -> None:
        if self.progress is not None:
            anchored = sum(len(r.records) for r in self.results)
            self.progress(BatchProgress(self.processed, self.stored, self.reused, self.skipped, anchored,
                                        len(self.results), self.total))

    # --- resuming ---------------------------------------------------------------------------------

    def finish_interrupted(self) -> None:
        """Abandon open batches with a vanished blob, then anchor (or settle) every sealed batch left.

        Open batches that were not sealed stay open: the records of this run join them."""
        for batch in list(self.state.batches.values()):
            if batch.sealed is None and not all(self._intact(e.cid) for e in batch.entries):
                log.warning("a journaled batch lost a stored blob; its records will be stored again")
                for entry in batch.entries:
                    self.client.store.remove(entry.cid)
                self.journal.abandoned(self.state, batch)
        for batch in list(self.state.batches.values()):
            self.interrupted.update(e.fingerprint for e in batch.entries)
            if batch.sealed is None:
                continue
            if self.anchored_on_chain(batch):
                self.settle(batch, None)
            else:
                self._anchor(batch)

    def _intact(self, cid: Cid) -> bool:
        """Whether a blob of an unsealed batch is stored whole: a crash before the group commit's
        barrier can leave a file under its CID whose bytes never reached the disk."""
        try:
            self.client.store.get(cid)  # checked against the CID
        except (BlobNotFound, IntegrityError, StorageUnavailable):
            return False
        self.client.store.include_in_barrier(cid)  # whole in the page cache is not yet on the disk
        return True

    def check_no_unlogged_batches(self) -> None:
        """A state directory without batch logs: refuse if this wallet anchored batches anyway (the logs
        were lost, or this is another home), since an import run again would write them a second time."""
        anchored = self.chain.get_events("RecordRegistry", "BatchAnchored", filters={"author": self.client.address})
        if anchored:
            logs = self.journal.dir
            raise JournalDamaged(
                f"{self.client.address} anchored {len(anchored)} batches on this chain that no log in {logs} names: "
                "the batch logs were deleted, or they were written from another home. Nothing was written. Run the "
                "import from the home that wrote them; or, if none of these records is among them, start logs "
                f"here (touch {logs / ANCHORED_NAME} {logs / BATCHES_NAME}) and run it again"
            )

    def anchored_on_chain(self, batch: OpenBatch) -> bool:
        """Whether this author's batch under `batch.key` is anchored (no one else can anchor under it)."""
        commitment = self.chain.call(
            self.chain.records.functions.batchCommitment(batch_id_of(self.client.address, batch.key)),
            action="look up batch")
        return bytes(commitment) != bytes(32)

    # --- adding records -----------------------------------------------------------------------------

    def add(self, chunk: Sequence[BatchItem]) -> None:
        """Validate every item of the chunk and check the author's rights for all of them (one round
        trip) before anything of the chunk is stored; then seal, store and journal one at a time."""
        prepared = [self._prepare(item) for item in chunk]
        new = {(patient, p.scope) for patient, p, fp in prepared
               if fp not in self.done and fp not in self.state.by_fingerprint()}
        self.keys.update(check_write_permission(self.client, new, require_keys=True))
        for patient, p, fingerprint in prepared:
            self.order.append(fingerprint)
            self.processed += 1
            if fingerprint in self.anchored_before:
                self.skipped += 1
            elif fingerprint in self.interrupted or fingerprint in self.done:
                self.reused += 1
            else:
                batch = self._open_batch(patient, p.scope)
                self.journal.stored(batch, self._seal(batch, fingerprint, p), durable=self.barrier is None)
                self.stored += 1
                if len(batch.entries) >= self.batch_size:
                    self._anchor(batch)
            self._report()

    def _prepare(self, item: BatchItem) -> tuple[str, Prepared, str]:
        patient = address(item.patient)
        prepared = prepare(item.source, category=item.category, scope=item.scope)
        key = (patient, prepared.scope, prepared.plain_hash)
        occurrence = self.occurrences[key]
        self.occurrences[key] += 1
        fingerprint = self.client.journal.fingerprint(
            b"ehr-batch/2", bytes.fromhex(patient[2:]), prepared.scope.to_bytes(8, "big"), prepared.plain_hash,
            occurrence.to_bytes(8, "big"),
        )
        return patient, prepared, fingerprint

    def _open_batch(self, patient: str, scope: int) -> OpenBatch:
        for batch in self.state.batches.values():
            if batch.patient == patient and batch.scope in (None, scope) and batch.sealed is None:
                return batch
        batch = OpenBatch(secrets.token_bytes(32), patient, scope)
        self.journal.opened(self.state, batch)
        return batch

    def _seal(self, batch: OpenBatch, fingerprint: str, prepared: Prepared) -> StoredEntry:
        index = len(batch.entries)
        record_id = batched_record_id_of(self.client.address, batch.key, index)
        binding = RecordBinding.of(record_id, VERSION, batch.patient, prepared.scope, self.client.address)
        # Stored and journaled one at a time: a blob stored ahead of its journal line would be an
        # orphan after a crash.
        wrapper = self.wrappers.setdefault(batch.key, KeyWrapper())
        cid, content_hash = self.client.writer.seal(binding, prepared.media_type, prepared.source(),
                                                    patient_key=self.keys.get(batch.patient), wrapper=wrapper)
        return StoredEntry(fingerprint, index, prepared.scope, content_hash, cid)

    # --- anchoring ------------------------------------------------------------------------------------

    def anchor_all(self) -> None:
        for batch in list(self.state.batches.values()):
            if batch.entries:
                self._anchor(batch)

    def _manifest(self, batch: OpenBatch) -> BatchManifest:
        return build_manifest(self.client.address, batch.patient, batch.key, [e.leaf for e in batch.entries])

    def _anchor(self, batch: OpenBatch) -> None:
        manifest = self._manifest(batch)
        data = manifest.to_bytes()
        if batch.sealed is None:
            cid = self.client.store.put(data)
            if self.barrier is not None:  # the durability barrier: nothing is sealed before it
                self.barrier()
                self.journal.sync()
            self.journal.sealed(batch, Sealed(manifest.root, cid, hashlib.sha256(data).digest()))
        sealed = batch.sealed
        assert sealed is not None
        if manifest.root != sealed.root or hashlib.sha256(data).digest() != sealed.manifest_hash:
            raise ConfigError(
                f"the batch journal in {self.journal.dir} does not rebuild the batch it sealed; move it aside and "
                "run the import again"
            )
        if not self.client.store.has(sealed.manifest_cid):
            self.client.store.put(data)
        fn = self.chain.records.functions.anchorBatch(
            batch.key, batch.patient, manifest.scopes, sealed.root, len(batch.entries), sealed.manifest_hash,
            cid_to_bytes(sealed.manifest_cid))
        try:
            tx: TxResult | None = self.chain.transact(self.client.identity.account, fn, action="anchor batch")
        except ChainError:
            if not self.anchored_on_chain(batch):
                raise
            tx = None  # an earlier attempt's transaction was mined in the meantime
        self.settle(batch, tx)

    def settle(self, batch: OpenBatch, tx: TxResult | None) -> None:
        sealed = batch.sealed
        assert sealed is not None
        ids = [batched_record_id_of(self.client.address, batch.key, e.index) for e in batch.entries]
        records = tuple(BatchRecord(r, batch.patient, e.scope, e.content_hash, e.cid)
                        for r, e in zip(ids, batch.entries, strict=True))
        scopes = 0
        for entry in batch.entries:
            scopes |= entry.scope
        self.journal.anchored(self.state, batch, ids, scopes=scopes)
        self.wrappers.pop(batch.key, None)
        self.done.update((e.fingerprint, r) for e, r in zip(batch.entries, ids, strict=True))
        self.results.append(BatchResult(batch_id_of(self.client.address, batch.key), batch.patient, sealed.root,
                                        sealed.manifest_cid, sealed.manifest_hash, records, tx))
        log.info("anchored a batch of %d records in tx %s", len(records), tx.tx_hash if tx else "(earlier attempt)")
        self._report()


def check_write_permission(
    client: EHRClient, pairs: set[tuple[str, int]], *, require_keys: bool,
) -> dict[str, tuple[int, bytes]]:
    """In one round trip: the author is an active provider or lab (or the patient), every patient is
    registered, and the author may write each (patient, scope); with `require_keys`, every patient's
    current X25519 key, which is returned."""
    if not pairs:
        return {}
    chain, author = client.chain, client.address
    patients = sorted({patient for patient, _ in pairs})
    ordered = sorted(pairs)
    calls = [Call(chain.consortium, "memberOf", (author,))]
    calls += [Call(chain.records, "isPatient", (p,)) for p in patients]
    calls += [Call(chain.consent, "canAmend", (p, author, s)) for p, s in ordered]
    key_calls = [Call(chain.keys, "currentKey", (p, KeyType.X25519)) for p in patients] if require_keys else []
    answers = rpc_batch(chain, [call_request(c) for c in calls + key_calls])
    action = "check write permission"
    role, suspended, _ = decoded(calls[0], answers[0], action=action)
    writer = not suspended and Role(int(role)) in WRITER_ROLES
    for patient, answer in zip(patients, answers[1 : 1 + len(patients)], strict=True):
        if not decoded(calls[1], answer, action=action):
            raise InvalidRecord(f"{patient} is not a registered patient; they must run `ehr patient register` "
                                "(nothing of this batch was stored)")
    offset = 1 + len(patients)
    for (patient, scope), answer in zip(ordered, answers[offset : offset + len(ordered)], strict=True):
        if not decoded(calls[offset], answer, action=action) or (patient != author and not writer):
            raise AccessDenied(
                f"{author} may not write records of {patient} in scope {scope_names(scope)}: an amend grant from the "
                "patient and an active provider/lab membership are needed; nothing of this batch was stored"
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
