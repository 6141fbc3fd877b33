"""Finding a patient's records, anchored alone or in batches, and trusting only what the chain vouches for.

Single records: `RecordAdded` events (indexed by record id and by patient) and the stored status.
Batched records: `BatchAnchored` events (indexed by patient); each batch's manifest is fetched,
its sha256 compared with the anchored one and its leaves rebuilt into the anchored root
(`BatchManifest.check`). The chain checked the author's right to write the patient's scopes when
the batch was anchored, so a batch that verifies is as trustworthy as a single record. A batch
that does not verify (manifest missing, altered, forged) is skipped and reported (`Skipped`),
never fatal: one member's bad batch cannot break anybody else's listing, history or sharing.

A record is found by id without knowing its patient: the registry says which 256 blocks hold the
event describing it (`anchoredNear`: its `RecordAdded`, or the `BatchAnchored` of the batch a batched
id names, `ehr_client.chain.batches`), and only the one manifest holding a batched record is fetched.
An id that names neither is refused without any log query.

A patient's listing keeps a block cursor (`ehr_client.client.anchor_cache`): the patient's events up
to a settled block, so each listing asks the node only for the blocks after it. The cache is not
trusted: statuses are read from the chain every time and, in the same round trip, each cached single
record's patient and scope (`getRecord`) and each cached batch's commitment (`batchCommitment`);
an entry the chain does not vouch for is left out and the cache dropped. What a cached single
record's event alone carries (content hash, CID, previous version) is not in the contract's state:
it is as good as the file, which only its owner's account can write.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from ehr_client.chain.calls import Call, RpcFailure, call_many, call_request, decoded, rpc_batch
from ehr_client.chain.client import ChainClient, EventRecord
from ehr_client.chain.batches import BatchIndex
from ehr_client.chain.types import Status
from ehr_client.client.anchor_cache import AnchorCache, Anchors
from ehr_client.client.manifest import BatchManifest, fetch_manifest_bytes
from ehr_client.client.model import BatchProof, Listing, RecordInfo, Skipped, hex_id
from ehr_client.errors import ChainUnavailable, EHRError, IntegrityError, InvalidRecord, RecordNotFound
from ehr_client.storage import BlobStore, cid_from_bytes

log = logging.getLogger("ehr_client.listing")
_SINGLES_KEPT = 4096


class RecordLocator:
    """Locates records for one client; caches verified manifests and the batched-id index."""

    def __init__(self, chain: ChainClient, store: BlobStore, *, anchors: AnchorCache | None = None) -> None:
        self.chain = chain
        self.store = store
        self.anchors = anchors  # None: every listing scans from the deployment
        self._lock = threading.Lock()
        self._manifests: OrderedDict[tuple[bytes, bytes], BatchManifest | str] = OrderedDict()  # or why refused
        self._singles: OrderedDict[bytes, RecordInfo] = OrderedDict()  # located single records, by id
        self.batch_index = BatchIndex(chain)

    # --- one record -----------------------------------------------------------------------------

    def find(self, record_id: bytes, *, patient: str | None = None) -> RecordInfo:
        """The record with this id, single or batched, with its current status. With `patient`, a
        batched record is found only in a batch of that patient's records."""
        return self.find_with(record_id, patient=patient)[0]

    def find_with(self, record_id: bytes, *, patient: str | None = None,
                  extra: Sequence[tuple[str, list[Any]]] = ()) -> tuple[RecordInfo, list[Any]]:
        """`find`, and the answers to `extra` requests (results or `RpcFailure`s) asked in the same round trip.

        A single record's anchoring event is looked up once per locator: its facts (patient, scope,
        author, content hash, CID) are fixed by its id, so later look-ups ask only its status and
        range (an event outside the range the registry names now was dropped by a reorganisation). The
        first look-up asks the registry which 256 blocks hold the event (`anchoredNear`, with the
        status and `extra`: a single record's `RecordAdded`, or the `BatchAnchored` of the batch a
        batched id names), then the logs of those blocks only, so its cost does not grow with the
        chain, and an unknown id costs no log query. An event is kept once it is `confirmations`
        blocks deep (a short fork cannot move it any more)."""
        self.chain.ensure_chain()
        with self._lock:
            known = self._singles.get(record_id)
        near = Call(self.chain.records, "anchoredNear", (record_id,))
        answer, *answers = rpc_batch(self.chain, [call_request(near), *extra])
        stored, first, last, batch_id = decoded(near, answer, action="look up record")
        if known is not None:
            if first <= known.block_number <= last and not any(batch_id):
                return self._statused([known], [stored])[0], answers
            with self._lock:  # the chain reorganised since: the event is located again
                self._singles.pop(record_id, None)
        events: list[EventRecord] = []  # no RecordAdded event: a batched record, or none
        if last != 0 and not any(batch_id):
            filters = {"recordId": record_id}
            events = self.chain.get_events("RecordRegistry", "RecordAdded", filters=filters, from_block=first,
                                           to_block=last)
            if not events:
                raise ChainUnavailable(
                    f"the chain node at {self.chain.rpc_url} holds record {hex_id(record_id)} but returned no "
                    f"event for it in blocks {first}-{last}, where the registry says it is: the node is behind, "
                    "pruned its logs, or serves another chain; nothing was read. Retry, or use another node"
                )
        if events:
            try:
                info = single_info(events[0])
            except IntegrityError as exc:
                raise IntegrityError(f"record {hex_id(record_id)} cannot be trusted: {exc}") from None
            if self.chain.settled(info.block_number):
                self._remember_single(info)
        else:
            located = self.batch_index.locate_in(record_id, bytes(batch_id), int(first), int(last), patient=patient)
            if located is None:
                raise unknown_record(record_id)
            event, index = located
            try:
                info = batched_infos(event, self.manifest(event), [index])[0]
            except EHRError as exc:
                raise IntegrityError(
                    f"record {hex_id(record_id)} is in batch {hex_id(bytes(event.args['batchId']))} by "
                    f"{event.args['author']}, which cannot be verified ({exc}); nothing was read"
                ) from None
        return self._statused([info], [int(stored)])[0], answers

    def _remember_single(self, info: RecordInfo) -> None:
        with self._lock:
            self._singles[info.record_id] = info
            self._singles.move_to_end(info.record_id)
            while len(self._singles) > _SINGLES_KEPT:
                self._singles.popitem(last=False)

    # --- a patient's records --------------------------------------------------------------------

    def listing(self, patient: str) -> Listing:
        """Every record version of `patient`, oldest first, and the batches skipped as unverifiable.

        With an `AnchorCache`, only the blocks after the patient's cursor are asked for; every record
        that came from the cache is checked against the chain's state in the same round trip as the
        statuses (`_checked`), and one the chain does not vouch for is left out and the cache dropped."""
        self.chain.ensure_chain()
        patient = to_checksum_address(patient)
        events, cursor = self._anchoring_events(patient)
        infos: list[RecordInfo] = []
        skipped: list[Skipped] = []
        for event in events:
            if event.name == "RecordAdded":
                try:
                    infos.append(single_info(event))
                except IntegrityError as exc:
                    skipped.append(Skipped(f"record {hex_id(bytes(event.args['recordId']))}", str(exc),
                                           str(event.args["author"]), event.tx_hash))
                continue
            try:
                manifest = self.manifest(event)
            except EHRError as exc:  # whatever another member anchored, it never breaks this listing
                skipped.append(skipped_batch(event, str(exc)))
                continue
            infos += batched_infos(event, manifest, range(len(manifest.leaves)))
        infos.sort(key=lambda i: (i.block_number, i.batch.index if i.batch else 0))
        return Listing(tuple(self._checked(patient, infos, cursor)), tuple(skipped))

    def _anchoring_events(self, patient: str) -> tuple[list[EventRecord], int | None]:
        """The patient's `RecordAdded` and `BatchAnchored` events, and the cursor of the cache they came
        from up to it (None: all came from the node). Two log queries (one round trip each while the cursor is recent); the
        first also asks the head and the cursor block, the second the block that becomes the cursor."""
        cache = self.anchors
        filters = {"patient": patient}
        anchors = None if cache is None else cache.load(patient)
        if anchors is None and not call_many(self.chain, [Call(self.chain.records, "isPatient", (patient,))],
                                             action="look up patient")[0]:
            return [], None  # never registered, so nothing anchored: anyone may name any address (the portal)
        while True:
            start = self.chain.deployment.deploy_block if anchors is None else anchors.cursor + 1
            extra: list[tuple[str, list[Any]]] = [("eth_blockNumber", [])]
            if anchors is not None:
                extra.append(("eth_getBlockByNumber", [hex(anchors.cursor), False]))
            singles, answers = self.chain.get_events_with("RecordRegistry", "RecordAdded", filters=filters,
                                                          from_block=start, extra=extra)
            if anchors is not None and _block_hash(answers[1]) != anchors.cursor_hash:
                log.warning("chain reorganisation or reset below block %s: the listing cache of %s is dropped and "
                            "the listing rescans from the deployment", anchors.cursor, patient)
                assert cache is not None
                cache.drop(patient)
                anchors = None
                continue
            head = int(answers[0], 16) if isinstance(answers[0], str) else None
            settle = None if head is None or cache is None else head - cache.depth
            if settle is not None and settle < start:
                settle = None
            more = [] if settle is None else [("eth_getBlockByNumber", [hex(settle), False])]
            batches, settled = self.chain.get_events_with("RecordRegistry", "BatchAnchored", filters=filters,
                                                          from_block=start, extra=more)
            break
        known = [] if anchors is None else list(anchors.events)
        events = sorted(known + singles + batches, key=lambda e: (e.block_number, e.log_index))
        settled_events = tuple(e for e in events if settle is not None and e.block_number <= settle)
        # A cursor for every registered patient, records or not (registering costs a transaction, so
        # the files are bounded by the chain); an address that never registered was answered above.
        if cache is not None and settle is not None:
            block = settled[0]
            if isinstance(block, dict) and _block_hash(block) and int(str(block.get("number")), 16) == settle:
                cache.save(patient, Anchors(settle, str(_block_hash(block)), settled_events))
        return events, None if anchors is None else anchors.cursor

    def _checked(self, patient: str, infos: Sequence[RecordInfo], cursor: int | None) -> list[RecordInfo]:
        """`with_status`, and for what came from the cache (blocks up to `cursor`) what the chain's state
        says about it, in the same round trip: a single record's patient and scope (`getRecord`), a
        batch's commitment (root, patient, scopes, leaf count; the manifest was checked against the root)."""
        if cursor is None:
            return self.with_status(infos)
        records = self.chain.records
        calls = [Call(records, "getRecord" if i.block_number <= cursor and i.batch is None else "recordStatus",
                      (i.record_id,)) for i in infos]
        batches = sorted({i.batch.batch_id for i in infos if i.batch is not None and i.block_number <= cursor})
        answers = rpc_batch(self.chain, [call_request(c) for c in calls]
                            + [call_request(Call(records, "batchCommitment", (b,))) for b in batches])
        commitments = dict(zip(batches, answers[len(infos):], strict=True))
        kept: list[RecordInfo] = []
        statuses: list[Any] = []
        for info, call, answer in zip(infos, calls, answers, strict=False):
            if call.name == "getRecord":
                state = _record_state(call, answer)
                if state is None or to_checksum_address(state[0]) != patient or int(state[1]) != info.scope:
                    continue
                status = state[2]
            else:
                if info.batch is not None and info.block_number <= cursor and \
                        _answer_bytes(commitments[info.batch.batch_id]) != _commitment(info.batch):
                    continue
                status = decoded(call, answer, action="look up record status")
            kept.append(info)
            statuses.append(status)
        if len(kept) < len(infos):
            log.warning("%d cached listing entries of %s are not what the chain holds; they are left out and the "
                        "cache is dropped", len(infos) - len(kept), patient)
            if self.anchors is not None:
                self.anchors.drop(patient)
        return self._statused(kept, statuses)

    def with_status(self, infos: Sequence[RecordInfo]) -> list[RecordInfo]:
        """The records with their current status (one batched round trip)."""
        calls = [Call(self.chain.records, "recordStatus", (i.record_id,)) for i in infos]
        return self._statused(infos, call_many(self.chain, calls, action="look up record status"))

    def _statused(self, infos: Sequence[RecordInfo], statuses: Sequence[Any]) -> list[RecordInfo]:
        out = []
        for info, status in zip(infos, statuses, strict=True):
            value = Status(int(status))
            if value == Status.NONE and info.batch is None:
                raise RecordNotFound(
                    f"record {hex_id(info.record_id)} has an anchoring event but no state on this chain; "
                    "the node serves another chain than the deployment describes"
                )
            out.append(info.with_status(value))
        return out

    # --- batches ----------------------------------------------------------------------------------

    def manifest(self, event: EventRecord) -> BatchManifest:
        """The manifest of an anchored batch, checked against everything the event anchors."""
        args = event.args
        key = (bytes(args["batchId"]), bytes(args["manifestHash"]))
        with self._lock:
            cached = self._manifests.get(key)
        if isinstance(cached, BatchManifest):
            return cached
        if cached is not None:  # refused before: the anchored bytes cannot change, so neither can that
            raise IntegrityError(cached)
        # What the anchored facts make permanent is remembered; a store that failed may answer later.
        try:
            cid = cid_from_bytes(bytes(args["manifestCid"]))
        except InvalidRecord:
            raise self._refuse(key, "it anchors a malformed manifest pointer") from None
        try:
            data = fetch_manifest_bytes(self.store, cid)
        except InvalidRecord as exc:  # larger than any manifest: the anchored bytes will not shrink
            raise self._refuse(key, str(exc)) from None
        try:
            manifest = self._checked_manifest(args, data)
        except (IntegrityError, InvalidRecord) as exc:
            raise self._refuse(key, str(exc)) from None
        self._remember(key, manifest)
        return manifest

    def _refuse(self, key: tuple[bytes, bytes], reason: str) -> IntegrityError:
        self._remember(key, reason)
        return IntegrityError(reason)

    def _checked_manifest(self, args: Any, data: bytes) -> BatchManifest:
        if hashlib.sha256(data).digest() != bytes(args["manifestHash"]):
            raise IntegrityError("its manifest does not match the sha256 anchored on chain")
        manifest = BatchManifest.from_bytes(data)
        manifest.check(author=to_checksum_address(args["author"]), patient=to_checksum_address(args["patient"]),
                       batch_key=bytes(args["batchKey"]), root=bytes(args["root"]), scopes=int(args["scopes"]),
                       leaf_count=int(args["leafCount"]))
        return manifest

    def _remember(self, key: tuple[bytes, bytes], outcome: BatchManifest | str) -> None:
        with self._lock:
            self._manifests[key] = outcome
            while len(self._manifests) > 1024:
                self._manifests.popitem(last=False)


def _block_hash(block: Any) -> str | None:
    value = block.get("hash") if isinstance(block, dict) else None
    return value.lower() if isinstance(value, str) else None


def _record_state(call: Call, answer: Any) -> tuple[str, int, int] | None:
    """`getRecord`'s (patient, scope, status), or None when the chain has no state for the id."""
    if isinstance(answer, RpcFailure) and answer.data is not None:
        return None  # RecordNotFound: the id is unknown on this chain
    state = decoded(call, answer, action="check a cached record")
    return str(state[0]), int(state[1]), int(state[2])


def _answer_bytes(answer: Any) -> bytes | None:
    return bytes.fromhex(answer[2:]) if isinstance(answer, str) and answer.startswith("0x") else None


def _commitment(batch: BatchProof) -> bytes:
    """`RecordRegistry.batchCommitment`: keccak256(abi.encode(root, patient, scopes, leafCount)), its last 3
    bytes zero (the registry keeps where the batch's event is there)."""
    digest = keccak(encode(["bytes32", "address", "uint64", "uint32"],
                           [batch.root, to_checksum_address(batch.patient), batch.scopes, batch.leaf_count]))
    return digest[:29] + bytes(3)


def unknown_record(record_id: bytes) -> RecordNotFound:
    """The error for an id this chain holds no record under."""
    return RecordNotFound(f"no record {hex_id(record_id)} on this chain; check the id, the --network and the deployment")


def single_info(event: EventRecord) -> RecordInfo:
    """A single record as its `RecordAdded` event describes it (status filled in by the caller).

    Raises IntegrityError when the anchored pointer is not a CID (the chain does not check it)."""
    args = event.args
    previous = bytes(args["previousId"])
    try:
        cid = cid_from_bytes(bytes(args["cid"]))
    except InvalidRecord:
        raise IntegrityError("its anchored storage pointer is not a CID") from None
    return RecordInfo(
        record_id=bytes(args["recordId"]), patient=str(args["patient"]), author=str(args["author"]),
        scope=int(args["scope"]), status="active", content_hash=bytes(args["contentHash"]),
        cid=cid, previous_id=previous if any(previous) else None,
        block_number=event.block_number, timestamp=event.timestamp, tx_hash=event.tx_hash,
    )


def batched_infos(event: EventRecord, manifest: BatchManifest, indexes: Iterable[int]) -> list[RecordInfo]:
    """The batched records at `indexes` of a verified batch, each with its proof."""
    args = event.args
    root, scopes, count = bytes(args["root"]), int(args["scopes"]), int(args["leafCount"])
    manifest_cid = cid_from_bytes(bytes(args["manifestCid"]))
    out = []
    for index in indexes:
        leaf = manifest.leaves[index]
        proof = BatchProof(manifest.author, manifest.batch_key, root, manifest.patient, scopes, count, index,
                           leaf.scope, leaf.content_hash, leaf.cid_hash, tuple(manifest.tree.proof(index)),
                           manifest_cid)
        out.append(RecordInfo(manifest.record_id(index), manifest.patient, manifest.author, leaf.scope, "active",
                              leaf.content_hash, leaf.cid, None, event.block_number, event.timestamp, event.tx_hash,
                              proof))
    return out


def skipped_batch(event: EventRecord, reason: str) -> Skipped:
    batch_id = hex_id(bytes(event.args["batchId"]))
    return Skipped(f"batch {batch_id}", reason, str(event.args["author"]), event.tx_hash)
