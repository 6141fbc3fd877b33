"""The read pipeline: one record or a patient's whole history, anchored alone or in batches.

For every record, in this order, and nothing returned that failed a check:
1. the status (erased records raise `RecordErased`, or are left out of a history) and `canRead`
   for the record's patient and scope, all in one JSON-RPC batch with what the access requests need
   (one single record read by id: located, with the access request's gas estimate standing in for
   `canRead`, in that same batch, `read_by_id`);
2. the access requests (`requestAccess`, or `requestBatchedAccess` with the proof for a batched
   record: the chain re-verifies the proof and names the batch's patient), signed and sent in one
   batch and awaited: the on-chain fact of the read comes first;
3. the blob, its sha256 against the chain (fetched while the access requests are mined), its
   header against the record's on-chain identity;
4. once the requests are mined, the data key (own wrap under any key version, custodian release, or key share), decryption with
   associated data built from the chain's facts, FHIR validation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ehr_client.chain.calls import (
    Call,
    Prepared,
    Sent,
    await_results,
    call_request,
    decoded,
    preparation_requests,
    prepared,
    rpc_batch,
    send_prepared,
    sender_lock,
)
from ehr_client.chain.client import ChainClient, TxResult
from ehr_client.chain.merkle import batch_leaf, root_from_proof
from ehr_client.client.keysource import ShareIndex, check_header, own_data_key
from ehr_client.client.locate import RecordLocator
from ehr_client.client.model import FHIR_MEDIA_TYPE, Identity, KeyRelease, ReadResult, RecordInfo, Skipped, hex_id
from ehr_client.crypto import claim_secret, iter_decrypt
from ehr_client.errors import (
    AccessDenied,
    DecryptionError,
    IntegrityError,
    KeyNotFound,
    RecordErased,
    StorageError,
)
from ehr_client.package import PackageHeader, max_header_size, parse_header
from ehr_client.records import validate_fhir
from ehr_client.keyshare import KeyShare
from ehr_client.storage import BlobStore, Cid, cid_to_bytes


_SHARES_KEPT = 16


@dataclass
class RecordReader:
    chain: ChainClient
    store: BlobStore
    identity: Identity
    _shares: dict[Cid, ShareIndex] = field(default_factory=dict, repr=False)

    def read(
        self,
        infos: Sequence[RecordInfo],
        *,
        key_share: Cid | None = None,
        key_release: KeyRelease | None = None,
        skip_erased: bool = False,
        skipped: list[Skipped] | None = None,
    ) -> list[ReadResult]:
        """Read `infos` (as located, with current status); see the module docstring.

        With `skipped` (a history), a record whose blob is missing or fails a check, or whose key
        this reader lacks, is reported there instead of failing the others."""
        kept = []
        for info in infos:
            if info.status == "tombstoned":
                if skip_erased:
                    continue
                raise RecordErased(f"record {hex_id(info.record_id)} was erased at the patient's request")
            _check_proof(info)
            kept.append(info)
        if not kept:
            return []
        chain, me, account = self.chain, self.identity.address, self.identity.account
        pairs = sorted({(i.patient, i.scope) for i in kept})
        views = [Call(chain.consent, "canRead", (patient, me, scope)) for patient, scope in pairs]
        access = [_access_call(chain, info) for info in kept]
        work = _Fetching(self, kept, key_share)
        try:
            with sender_lock(chain, account):
                answers = rpc_batch(chain, [call_request(v) for v in views] + preparation_requests(chain, me, access))
                allowed = {pair: decoded(view, answer, action="check read permission")
                           for pair, view, answer in zip(pairs, views, answers, strict=False)}
                for info in kept:
                    if not allowed[(info.patient, info.scope)]:
                        raise AccessDenied(_denied(me, info))
                plan = prepared(access, answers[len(views):], action="request access")
                sent = work.send(access, plan)
            return self._finish(kept, access, sent, work, key_release=key_release, skipped=skipped)
        finally:
            work.close()

    def read_by_id(
        self, record_id: bytes, locator: RecordLocator, *, key_share: Cid | None = None,
        key_release: KeyRelease | None = None,
    ) -> ReadResult:
        """`read` of one record by id. A single record is located, and its access request planned, in
        one round trip: the request's gas estimate is the contract's own permission check (a reader
        without a grant gets `AccessDenied` before anything is sent), and its nonce and fees come with
        it. A batched record needs its proof first, so it takes `read`'s path."""
        chain, me, account = self.chain, self.identity.address, self.identity.account
        access = [Call(chain.consent, "requestAccess", (record_id,))]
        work: _Fetching | None = None
        try:
            with sender_lock(chain, account):
                info, answers = locator.find_with(record_id, extra=preparation_requests(chain, me, access))
                if info.batch is None and info.status != "tombstoned":
                    try:
                        plan = prepared(access, answers, action="request access")
                    except AccessDenied:
                        raise AccessDenied(_denied(me, info)) from None
                    work = _Fetching(self, [info], key_share)
                    sent = work.send(access, plan)
            if work is None:
                return self.read([info], key_share=key_share, key_release=key_release)[0]
            return self._finish([info], access, sent, work, key_release=key_release)[0]
        finally:
            if work is not None:
                work.close()

    def _finish(
        self, kept: Sequence[RecordInfo], access: list[Call], sent: Sent, work: _Fetching, *,
        key_release: KeyRelease | None, skipped: list[Skipped] | None = None,
    ) -> list[ReadResult]:
        """Once the access requests are mined, open each record fetched meanwhile."""
        accesses = await_results(self.chain, self.identity.account, access, sent, action="request access")
        blobs, share = work.results()
        results = []
        for info, access_result, blob in zip(kept, accesses, blobs, strict=True):
            try:
                if isinstance(blob, Exception):
                    raise blob
                results.append(self._open(info, blob, access_result, share, key_release))
            except (StorageError, IntegrityError, DecryptionError, KeyNotFound) as exc:
                if skipped is None:
                    raise
                skipped.append(Skipped(f"record {hex_id(info.record_id)}", str(exc) or type(exc).__name__,
                                       info.author, info.tx_hash))
        return results

    def _share(self, cid: Cid) -> ShareIndex:
        """A key share, parsed once per CID: the CID names its bytes, so the parse cannot go stale (a share
        covering a patient's whole history is parsed in milliseconds, on every read otherwise)."""
        index = self._shares.get(cid)
        if index is None:
            index = ShareIndex.of(KeyShare.from_bytes(self.store.get(cid)))
            if len(self._shares) >= _SHARES_KEPT:
                self._shares.pop(next(iter(self._shares)))
            self._shares[cid] = index
        return index

    def _fetch_all(self, infos: Sequence[RecordInfo]) -> list[bytes | StorageError | IntegrityError]:
        """Each record's verified ciphertext, or the error that fetching it raised (reported in order)."""
        blobs: list[bytes | StorageError | IntegrityError] = []
        for info in infos:
            try:
                blobs.append(self.fetch_verified(info, doing="decrypted"))
            except (StorageError, IntegrityError) as exc:
                blobs.append(exc)
        return blobs

    def _open(
        self, info: RecordInfo, blob: bytes, access: TxResult, share: ShareIndex | None,
        key_release: KeyRelease | None,
    ) -> ReadResult:
        header, offset = parse_header(blob)
        binding = check_header(info, header)
        data_key = own_data_key(self.identity, header, binding)
        if data_key is None and key_release is not None:
            data_key = key_release.data_key(info, header, access)
        if data_key is None:
            if share is None:
                raise KeyNotFound(
                    f"record {hex_id(info.record_id)} was not sealed to {self.identity.address} when written; pass "
                    "the key share the patient sent with the grant (--key-share)"
                )
            data_key = share.data_key(self.identity, info, binding)
        data = b"".join(iter_decrypt(memoryview(blob)[offset:], data_key, record_id=info.record_id,
                                     version=header.version, context=binding.context))
        if header.media_type == FHIR_MEDIA_TYPE:
            validate_fhir(data)
        return ReadResult(info, header.media_type, data, claim_secret(data_key, info.record_id))

    def fetch_verified(self, info: RecordInfo, *, doing: str) -> bytes:
        """The stored bytes of a record, only if their sha256 is the one anchored on chain."""
        blob = self.store.get(info.cid)
        if hashlib.sha256(blob).digest() != info.content_hash:
            raise IntegrityError(
                f"the stored data of record {hex_id(info.record_id)} does not match the hash anchored on chain; "
                f"it was altered or replaced: nothing was {doing}"
            )
        return blob

    def header(self, cid: Cid) -> PackageHeader:
        """The package header of a stored record, reading no more than a header can be."""
        limit = max_header_size()
        buffer = bytearray()
        for chunk in self.store.iter_get(cid):
            buffer += chunk
            if len(buffer) >= limit:
                break
        header, _ = parse_header(bytes(buffer))
        return header


class _Fetching:
    """The ciphertext (and key share) of records being read, fetched and checked against the chain on a
    worker thread while their access requests are mined: the fetch starts once the requests are sent,
    or, on a node that mines on arrival (the send then waits for the receipts), just before. Nothing
    is decrypted until the requests are mined."""

    def __init__(self, reader: RecordReader, kept: Sequence[RecordInfo], key_share: Cid | None) -> None:
        self._reader, self._kept, self._key_share = reader, kept, key_share
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ehr-fetch")
        self._fetched: Future[list[bytes | StorageError | IntegrityError]] | None = None
        self._shared: Future[ShareIndex] | None = None

    def send(self, access: list[Call], plan: Prepared) -> Sent:
        """Send the access requests (the caller holds the sender lock) and start the fetch around it."""
        if plan.mined_on_send:
            self._start()
        sent = send_prepared(self._reader.chain, self._reader.identity.account, access, plan,
                             action="request access")
        if self._fetched is None:
            self._start()
        return sent

    def _start(self) -> None:
        self._fetched = self._pool.submit(self._reader._fetch_all, self._kept)
        if self._key_share is not None:
            self._shared = self._pool.submit(self._reader._share, self._key_share)

    def results(self) -> tuple[list[bytes | StorageError | IntegrityError], ShareIndex | None]:
        """The fetched blobs (or why each failed) and the key share, waiting for them."""
        if self._fetched is None:
            self._start()
        assert self._fetched is not None
        return self._fetched.result(), self._shared.result() if self._shared is not None else None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _denied(reader: str, info: RecordInfo) -> str:
    return (f"{reader} may not read record {hex_id(info.record_id)}: no valid grant covers its scope (never granted, "
            "expired, revoked, or membership suspended); ask the patient for consent")


def _check_proof(info: RecordInfo) -> None:
    """A batched record's proof must lead to its root before anything is sent (the chain checks again)."""
    proof = info.batch
    if proof is None:
        return
    leaf = batch_leaf(proof.index, proof.scope, proof.content_hash, cid_to_bytes(info.cid))
    if root_from_proof(leaf, proof.index, proof.leaf_count, proof.proof) != proof.root:
        raise IntegrityError(
            f"the Merkle proof of record {hex_id(info.record_id)} does not lead to its batch root: the leaf or the "
            "proof was altered; nothing was read"
        )


def _access_call(chain: ChainClient, info: RecordInfo) -> Call:
    if info.batch is None:
        return Call(chain.consent, "requestAccess", (info.record_id,))
    args: Any = info.batch.as_arg()
    return Call(chain.consent, "requestBatchedAccess", (args,))
