"""Locate, verify and read records anchored in batches, and read a patient's whole history at once.

Locating: `BatchAnchored` events (one log query) -> each manifest fetched, its sha256 compared with
the anchored `manifestHash`, its leaves rebuilt into the anchored root -> the leaves of a patient
or a record id, each with its Merkle proof.

Reading, for one record or many (every chain lookup for all of them in one JSON-RPC batch):
the proof checked off chain, then on chain (`verifyBatchedRecord`), that the batch was anchored by
its manifest's author in the block the event says, that this author could write the patient's
scope at that block (a historical `canAmend` call), that the record was not erased, and `canRead`;
then one access-request transaction per record (`requestBatchedAccess`, or `requestAccess` for
single records), all sent in one batch; only then the blobs are fetched, their sha256 compared with
the anchored hash, decrypted and validated. Any failed check raises the same typed errors as
`EHRClient.read_record`, and nothing is returned.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address
from hexbytes import HexBytes

from ehr_client._batch_manifest import BatchManifest, patient_address
from ehr_client._batch_rpc import (
    Call,
    RpcFailure,
    await_results,
    call_request,
    decoded,
    preparation_requests,
    prepared,
    rpc_batch,
    send_prepared,
    sender_lock,
)
from ehr_client.chain.client import EventRecord
from ehr_client.chain.merkle import record_leaf, verify_proof
from ehr_client.client import FHIR_MEDIA_TYPE, EHRClient, ReadResult, RecordInfo
from ehr_client.crypto import iter_decrypt, record_associated_data, unwrap_data_key
from ehr_client.errors import (
    AccessDenied,
    EHRError,
    IntegrityError,
    InvalidRecord,
    KeyNotFound,
    RecordErased,
    RecordNotFound,
    StorageError,
)
from ehr_client.package import PackageHeader, parse_header
from ehr_client.records import ALL_SCOPES, describe, validate_fhir
from ehr_client.sharing import KeyShare, ShareEntry
from ehr_client.storage import Cid, cid_from_bytes

_TOMBSTONED = 3
_NONE = 0


@dataclass(frozen=True)
class BatchedRecord:
    """A record anchored in a batch, located through its batch's verified manifest."""

    record_id: bytes
    patient: str
    author: str
    scope: int
    content_hash: bytes
    cid: Cid
    root: bytes
    proof: tuple[bytes, ...]
    manifest_cid: Cid
    block_number: int
    timestamp: int
    tx_hash: str

    @property
    def leaf(self) -> bytes:
        return record_leaf(self.record_id, self.patient, self.content_hash, self.scope)

    def info(self) -> RecordInfo:
        """The record as `RecordInfo` (what `ReadResult.info` holds); `tx_hash` is the anchoring transaction."""
        return RecordInfo(self.record_id, self.patient, self.author, self.scope, "active", self.content_hash,
                          self.cid, None, self.block_number, self.timestamp, self.tx_hash)


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


# --- locating -------------------------------------------------------------------------------------------


def batch_events(client: EHRClient, *, root: bytes | None = None) -> list[EventRecord]:
    return client.chain.get_events("RecordRegistry", "BatchAnchored", filters={"root": root} if root else None)


class _ManifestCache:
    """Manifests that passed every check, keyed by all the on-chain facts they were checked against.

    Those facts are immutable and the manifest is content-addressed, so checking again could only
    give the same answer; the cache spares refetching and rehashing every manifest on every read.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[tuple[Any, ...], BatchManifest] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> BatchManifest | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple[Any, ...], manifest: BatchManifest) -> None:
        with self._lock:
            self._items[key] = manifest
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_verified = _ManifestCache(256)


def verified_manifest(client: EHRClient, event: EventRecord) -> BatchManifest:
    """The manifest of an anchored batch, checked against everything the event anchors."""
    args = event.args
    key = (client.chain.chain_id, client.chain.records.address, bytes(args["root"]), bytes(args["manifestHash"]),
           bytes(args["manifestCid"]), to_checksum_address(args["author"]), int(args["leafCount"]))
    cached = _verified.get(key)
    if cached is not None:
        return cached
    manifest = _check_manifest(client, event)
    _verified.put(key, manifest)
    return manifest


def _check_manifest(client: EHRClient, event: EventRecord) -> BatchManifest:
    args = event.args
    root = bytes(args["root"])
    try:
        cid = cid_from_bytes(bytes(args["manifestCid"]))
    except InvalidRecord:
        raise IntegrityError(f"batch {_hex(root)} anchors a malformed manifest pointer; its records cannot be read") \
            from None
    data = client.store.get(cid)
    if hashlib.sha256(data).digest() != bytes(args["manifestHash"]):
        raise IntegrityError(
            f"the manifest of batch {_hex(root)} does not match the sha256 anchored on chain; it was altered or "
            "replaced, so none of its records is trusted: nothing was read"
        )
    manifest = BatchManifest.from_bytes(data, root=root)
    if manifest.author != to_checksum_address(args["author"]) or len(manifest.leaves) != int(args["leafCount"]):
        raise IntegrityError(f"the manifest of batch {_hex(root)} names another author or leaf count than the chain")
    if manifest.root != root:
        raise IntegrityError(
            f"the leaves listed in the manifest of batch {_hex(root)} do not hash to its anchored Merkle root; "
            "a leaf was forged or removed: nothing was read"
        )
    return manifest


def _located(event: EventRecord, manifest: BatchManifest, indexes: Iterable[int]) -> list[BatchedRecord]:
    root = bytes(event.args["root"])
    cid = cid_from_bytes(bytes(event.args["manifestCid"]))
    out = []
    for index in indexes:
        leaf = manifest.leaves[index]
        out.append(BatchedRecord(leaf.record_id, leaf.patient, manifest.author, leaf.scope, leaf.content_hash,
                                 leaf.cid, root, tuple(manifest.tree.proof(index)), cid, event.block_number,
                                 event.timestamp, event.tx_hash))
    return out


def list_batched_records(client: EHRClient, patient: str) -> list[BatchedRecord]:
    """Every batched record of `patient`, oldest batch first (one log query; manifests from the store).

    Raises IntegrityError if any anchored manifest fails its checks: a batch's patients are known
    only from its manifest, so an unverifiable one could hide this patient's records.
    """
    patient = patient_address(patient)
    found = []
    for event in batch_events(client):
        manifest = verified_manifest(client, event)
        found += _located(event, manifest, [i for i, leaf in enumerate(manifest.leaves) if leaf.patient == patient])
    return found


def find_batched_record(client: EHRClient, record_id: bytes, *, root: bytes | None = None) -> BatchedRecord:
    """The batched record with this id (in the batch `root`, if given), from the earliest batch whose
    manifest verifies. If it is in none of them and some manifest could not be fetched or verified,
    that failure is raised rather than RecordNotFound (the record may be in that batch)."""
    failure: EHRError | None = None
    for event in batch_events(client, root=root):
        try:
            manifest = verified_manifest(client, event)
        except (StorageError, IntegrityError) as exc:
            failure = failure or exc
            continue
        indexes = [i for i, leaf in enumerate(manifest.leaves) if leaf.record_id == record_id]
        if indexes:
            return _located(event, manifest, indexes[:1])[0]
    if failure is not None:
        raise failure
    raise RecordNotFound(f"no batch anchored on this chain lists record {_hex(record_id)}; check the id and --network")


# --- reading --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    info: RecordInfo
    batched: BatchedRecord | None

    def access_call(self, client: EHRClient) -> Call:
        b = self.batched
        if b is None:
            return Call(client.chain.consent, "requestAccess", (self.info.record_id,))
        return Call(client.chain.consent, "requestBatchedAccess",
                    (b.root, list(b.proof), b.record_id, b.patient, b.content_hash, b.scope))


class _Views:
    """The view calls one read needs, deduplicated, and their answers once the batch returns."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, list[Any]]] = []
        self.calls: list[Call | None] = []
        self._index: dict[Any, int] = {}
        self.answers: list[Any] = []

    def call(self, key: Any, call: Call) -> None:
        self._add(key, call, call_request(call))

    def raw(self, key: Any, method: str, params: list[Any]) -> None:
        self._add(key, None, (method, params))

    def _add(self, key: Any, call: Call | None, request: tuple[str, list[Any]]) -> None:
        if key not in self._index:
            self._index[key] = len(self.requests)
            self.calls.append(call)
            self.requests.append(request)

    def value(self, key: Any, *, action: str) -> Any:
        i = self._index[key]
        call = self.calls[i]
        return decoded(call, self.answers[i], action=action) if call is not None else self.answers[i]


def _read(
    client: EHRClient, targets: Sequence[_Target], *, key_share: Cid | None, skip_erased: bool
) -> list[ReadResult]:
    if not targets:
        return []
    chain, me = client.chain, client.address
    for t in targets:
        b = t.batched
        if b is not None and not verify_proof(b.proof, b.root, b.leaf):
            raise IntegrityError(
                f"the Merkle proof of record {_hex(b.record_id)} does not lead to batch root {_hex(b.root)}: the "
                "leaf or the proof was altered; nothing was read"
            )
    views = _Views()
    topic = HexBytes(chain.records.events.BatchAnchored().topic).to_0x_hex()
    for t in targets:
        info, b = t.info, t.batched
        views.call(("status", info.record_id), Call(chain.records, "recordStatus", (info.record_id,)))
        views.call(("read", info.patient, info.scope), Call(chain.consent, "canRead", (info.patient, me, info.scope)))
        if b is None:
            continue
        views.call(("proof", b.root, b.leaf), Call(chain.records, "verifyBatchedRecord",
                                                   (b.root, list(b.proof), b.record_id, b.patient, b.content_hash,
                                                    b.scope)))
        views.call(("batch", b.root), Call(chain.records, "getBatch", (b.root,)))
        views.raw(("event", b.root, b.block_number), "eth_getLogs",
                  [{"address": chain.records.address, "fromBlock": hex(b.block_number), "toBlock": hex(b.block_number),
                    "topics": [topic, _hex(b.root)]}])
        views.call(("amend", b.patient, b.author, b.scope, b.block_number),
                   Call(chain.consent, "canAmend", (b.patient, b.author, b.scope), b.block_number))

    account = client.identity.account
    access = [t.access_call(client) for t in targets]
    with sender_lock(chain, account):
        answers = rpc_batch(chain, views.requests + preparation_requests(chain, me, access))
        views.answers = answers[: len(views.requests)]
        kept = [i for i, t in enumerate(targets) if _check(client, views, t, skip_erased=skip_erased)]
        plan = prepared([access[i] for i in kept], _kept_preparation(answers[len(views.requests):], kept,
                                                                     len(targets)), action="request access")
        hashes = send_prepared(chain, account, [access[i] for i in kept], plan, action="request access")
    await_results(chain, account, [access[i] for i in kept], hashes, action="request access")

    share = _share_entries(client, key_share)
    return [_open(client, targets[i].info, share) for i in kept]


def _kept_preparation(answers: Sequence[Any], kept: Sequence[int], count: int) -> list[Any]:
    return [answers[i] for i in kept] + list(answers[count:])


def _check(client: EHRClient, views: _Views, target: _Target, *, skip_erased: bool) -> bool:
    """Raise the typed error of the first failed check; False for an erased record being skipped."""
    info, b = target.info, target.batched
    rid = _hex(info.record_id)
    if b is not None:
        action = "verify batched record"
        author, _, anchored_at = views.value(("batch", b.root), action=action)
        logs = views.value(("event", b.root, b.block_number), action=action)
        if isinstance(logs, RpcFailure):
            raise logs.error(action=action)
        authors = {to_checksum_address("0x" + str(log["topics"][2])[-40:]) for log in logs or []}
        if int(anchored_at) == 0 or to_checksum_address(author) != b.author or authors != {b.author}:
            raise IntegrityError(
                f"batch {_hex(b.root)} of record {rid} is not anchored by {b.author} in block {b.block_number} as "
                "its manifest claims; nothing was read"
            )
        if not views.value(("proof", b.root, b.leaf), action=action):
            raise IntegrityError(f"the chain does not confirm record {rid} in batch {_hex(b.root)}; nothing was read")
        if not views.value(("amend", b.patient, b.author, b.scope, b.block_number), action=action):
            raise IntegrityError(
                f"record {rid} was anchored by {b.author}, who was not allowed to write {b.patient}'s records in scope "
                f"{','.join(describe(b.scope))} at block {b.block_number}; the record is not trusted: nothing was read"
            )
    status = int(views.value(("status", info.record_id), action="look up record"))
    if status == _TOMBSTONED:
        if skip_erased:
            return False
        raise RecordErased(f"record {rid} was erased at the patient's request")
    if b is None and status == _NONE:
        raise RecordNotFound(f"no record {rid} on this chain; check the id and the --network")
    if not views.value(("read", info.patient, info.scope), action="check read permission"):
        raise AccessDenied(
            f"{client.address} may not read record {rid}: no valid grant covers its scope "
            "(never granted, expired, revoked, or membership suspended); ask the patient for consent"
        )
    return True


def _share_entries(client: EHRClient, key_share: Cid | None) -> tuple[KeyShare, dict[bytes, ShareEntry]] | None:
    if key_share is None:
        return None
    share = KeyShare.from_bytes(client.store.get(key_share))
    return share, {entry.record_id: entry for entry in share.entries}


def _open(
    client: EHRClient, info: RecordInfo, share: tuple[KeyShare, dict[bytes, ShareEntry]] | None
) -> ReadResult:
    blob = client.fetch_verified(info, doing="decrypted")
    header, offset = parse_header(blob)
    data_key = _data_key(client, info, header, share)
    data = b"".join(iter_decrypt(memoryview(blob)[offset:], data_key, record_id=info.record_id,
                                 version=header.version))
    if header.media_type == FHIR_MEDIA_TYPE:
        validate_fhir(data)
    return ReadResult(info, header.media_type, data)


def _data_key(
    client: EHRClient, info: RecordInfo, header: PackageHeader, share: tuple[KeyShare, dict[bytes, ShareEntry]] | None
) -> bytes:
    """As `EHRClient._data_key`, with the key share parsed once for all records."""
    aad = record_associated_data(info.record_id, header.version)
    for wrap in header.wrap_for(bytes.fromhex(client.address[2:])):
        private = client.identity.x25519.get(wrap.key_version)
        if private is not None:
            return unwrap_data_key(wrap.wrapped, private, associated_data=aad)
    if share is None:
        raise KeyNotFound(
            f"record {_hex(info.record_id)} was not sealed to {client.address} when written; pass the key "
            "share the patient sent with the grant (--key-share)"
        )
    key_share, entries = share
    entry = entries.get(info.record_id)
    if entry is None or to_checksum_address(key_share.grantee) != client.address or entry.version != header.version:
        raise KeyNotFound(f"the key share does not cover record {_hex(info.record_id)} for {client.address}")
    private = client.identity.x25519.get(entry.key_version)
    if private is None:
        raise KeyNotFound(f"the key share is sealed to key version {entry.key_version}, which this keystore lacks")
    return unwrap_data_key(entry.wrapped, private, associated_data=aad)


def read_batched_records(
    client: EHRClient, records: Sequence[BatchedRecord], *, key_share: Cid | None = None
) -> list[ReadResult]:
    """Verify and read batched records (all chain checks in one round trip, one batch of access requests)."""
    return _read(client, [_Target(r.info(), r) for r in records], key_share=key_share, skip_erased=False)


def read_batched_record(
    client: EHRClient, record: BatchedRecord | bytes, *, key_share: Cid | None = None
) -> ReadResult:
    """Verify and read one batched record, given as located or by id."""
    located = record if isinstance(record, BatchedRecord) else find_batched_record(client, record)
    return read_batched_records(client, [located], key_share=key_share)[0]


def read_history(
    client: EHRClient, patient: str, *, scopes: int = int(ALL_SCOPES), key_share: Cid | None = None
) -> list[ReadResult]:
    """Every record version of `patient` within `scopes`, single and batched, oldest first; erased
    records are left out. All checks in one JSON-RPC batch and all access requests in another, whatever
    the number of records. Raises AccessDenied if the reader may not read any of them: pass the
    `scopes` you were granted."""
    patient = patient_address(patient)
    singles = [_Target(r, None) for r in client.list_records(patient)
               if r.status != "tombstoned" and r.scope & scopes == r.scope]
    batched = [_Target(b.info(), b) for b in list_batched_records(client, patient) if b.scope & scopes == b.scope]
    targets = sorted(singles + batched, key=lambda t: t.info.block_number)
    return _read(client, targets, key_share=key_share, skip_erased=True)
