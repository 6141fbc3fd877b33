"""Collect blobs nothing references: what a crash left stored but never anchored, and what an
erasure interrupted after its tombstone left behind.

A blob is kept if anything live could still need it:
- the chain: the `RecordAdded` pointer of a record not tombstoned, a batch's manifest and every
  leaf of it whose batched record is not tombstoned;
- a journal of any wallet of the home: pending single writes and acknowledged writes (unless the
  chain shows their record tombstoned: the write landed and was erased), open or sealed batches
  (not anchored, so never erased), anchored batches' manifests, and the key shares a wallet
  stored (their CIDs travel off chain, with the grants);
- age: anything younger than the grace period (a write in flight stores before it journals);
- a key share, even one no log names: its CID went off chain with a grant, and a shares.log
  lost or cut short must not cost a grantee their keys (shares are small).
A blob referenced only by tombstoned records is garbage (`erased`): the erasure that tombstoned
it died before unpinning it. So is a key share whose every entry names a tombstoned record (it
opens nothing live). A key share holding keys of tombstoned and live records alike is kept (the
grantee still needs the live ones) and reported in `unfinished_erasures`: rerunning the erasure
re-issues it without the erased keys. Everything else is garbage. A dry run (the default) only
reports; a damaged journal (`JournalDamaged`) or a damaged manifest of an anchored batch
(`IntegrityError`) stops the collection rather than risk deleting what it would have protected.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from ehr_client.batch.journal import BatchJournal
from ehr_client.chain.client import ChainClient
from ehr_client.client.manifest import BatchManifest, fetch_manifest_bytes
from ehr_client.errors import EHRError, IntegrityError, StorageUnavailable
from ehr_client.journal import Journal, JournalDamaged, checked_payload
from ehr_client.keyshare import KeyShare
from ehr_client.package import parse_header
from ehr_client.storage import Cid, LocalStore, cid_from_bytes

DEFAULT_GRACE_SECONDS = 24 * 3600
_MAX_SHARE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class GcReport:
    garbage: tuple[Cid, ...]
    referenced: int
    too_young: int
    removed: int
    bytes_garbage: int
    erased: tuple[Cid, ...] = ()
    unfinished_erasures: tuple[Cid, ...] = ()


def tombstoned_on_chain(chain: ChainClient) -> set[bytes]:
    """The ids of every tombstoned record, single or batched."""
    return {bytes(e.args["recordId"]) for e in chain.get_events("RecordRegistry", "RecordTombstoned")}


def referenced_on_chain(chain: ChainClient, store: LocalStore, *, erased: Collection[bytes] = ()) -> set[str]:
    """Every blob the chain points at for a record not in `erased`: record pointers, batch
    manifests and their leaves."""
    return chain_references(chain, store, erased=erased)[0]


def chain_references(chain: ChainClient, store: LocalStore, *, erased: Collection[bytes] = (),
                     ours: Collection[str] = ()) -> tuple[set[str], set[str]]:
    """(blobs the chain points at for a record not in `erased`, blobs it points at for one in `erased`).

    Whoever anchors a record or a batch chooses its pointer, so a blob can be in both: `collect`
    settles those by the record the blob's own package names (`_sealed_to_erased`). A manifest in
    `ours` (this home's batches) that the store holds but cannot read stops everything
    (`IntegrityError`): its records cannot be told from garbage. Another author's is skipped: whoever
    anchors a batch may point it at any blob, damaged ones included."""
    live: set[str] = set()
    dead: set[str] = set()
    for event in chain.get_events("RecordRegistry", "RecordAdded"):
        try:
            cid = cid_from_bytes(bytes(event.args["cid"]))
        except EHRError:
            continue
        (dead if bytes(event.args["recordId"]) in erased else live).add(cid)
    for event in chain.get_events("RecordRegistry", "BatchAnchored"):
        try:
            manifest_cid = cid_from_bytes(bytes(event.args["manifestCid"]))
        except EHRError:
            continue
        if not store.has(manifest_cid):
            live.add(manifest_cid)
            continue
        try:
            stored = fetch_manifest_bytes(store, manifest_cid)
        except (IntegrityError, StorageUnavailable) as exc:  # the store's copy is damaged or unreadable
            if manifest_cid not in ours:
                continue
            batch = "0x" + bytes(event.args["batchId"]).hex()
            raise IntegrityError(
                f"the manifest {manifest_cid} of the anchored batch {batch} is in {store!r} but cannot be read "
                f"({exc}); garbage collection stopped so that no record of that batch is deleted. Restore the "
                "manifest's blob from a replica or a backup of the store, then run `ehr storage gc` again") from exc
        except EHRError:
            continue  # too large to be a manifest: a pointer whoever anchored the batch chose, keeping nothing
        try:
            manifest = BatchManifest.from_bytes(stored)
        except EHRError:
            continue  # it reads whole but is no manifest (another record's package, say): it keeps nothing alive
        live.add(manifest_cid)
        for index, leaf in enumerate(manifest.leaves):
            (dead if manifest.record_id(index) in erased else live).add(str(leaf.cid))
    return live, dead


def referenced_by_journals(state_dirs: Iterable[Path], *, erased: Collection[bytes] = ()) -> set[str]:
    """Every blob a journal of these state directories names, but the writes of records in
    `erased` (damage raises JournalDamaged)."""
    erased_hex = {"0x" + r.hex() for r in erased}
    found: set[str] = set()
    for state in state_dirs:
        journal = Journal(state, b"")
        found.update(entry.cid for entry in journal.pending() if entry.record_id.lower() not in erased_hex)
        found.update(entry.cid for entry in journal.acknowledged() if entry.record_id.lower() not in erased_hex)
        found.update(home_manifests([state]))
        found.update(_open_batch_cids(BatchJournal(state, "0x" + "00" * 20).path))
    return found


def _open_batch_cids(path: Path) -> set[str]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return set()
    found = set()
    complete, _, _ = data.rpartition(b"\n")
    for number, line in enumerate(complete.split(b"\n") if complete else [], start=1):
        try:
            step = json.loads(checked_payload(line))
        except ValueError:
            raise JournalDamaged(f"the batch journal {path} is damaged at line {number}; garbage collection stopped "
                                 f"so that nothing it protects is deleted. Move it aside (mv {path} {path}.damaged), "
                                 "run the same import again, then `ehr storage gc`") from None
        for key in ("cid", "manifestCid"):
            if isinstance(step.get(key), str):
                found.add(step[key])
    return found


def home_manifests(state_dirs: Iterable[Path]) -> set[str]:
    """The manifests of the batches the wallets of these state directories anchored."""
    return {str(b["manifestCid"]) for state in state_dirs
            for b in BatchJournal(state, "0x" + "00" * 20).anchored_batches()}


def journaled_shares(state_dirs: Iterable[Path]) -> set[str]:
    """The key shares the wallets of these state directories stored (damage raises JournalDamaged)."""
    return {cid for state in state_dirs for cid in Journal(state, b"").shares()}


def _sealed_to_erased(store: LocalStore, cid: Cid, erased: Collection[bytes]) -> bool:
    """Whether a blob is a record package sealed to a tombstoned record (its binding says which): then
    another record's pointer to it (anyone may anchor any CID) does not keep the erased ciphertext."""
    chunks = store.iter_get(cid)
    try:
        header, _ = parse_header(next(iter(chunks), b""))  # a header fits in the first chunk (1 MiB)
    except EHRError:
        return False
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return header.binding is not None and header.binding.record_id in erased


def _key_share(store: LocalStore, cid: Cid) -> KeyShare | None:
    try:
        if store.size(cid) > _MAX_SHARE_BYTES:
            return None
        data = store.get(cid)
        if not data.startswith(b"{"):  # a sealed record package starts with its binary header
            return None
        return KeyShare.from_bytes(data)
    except EHRError:
        return None


def collect(chain: ChainClient, store: LocalStore, state_dirs: Iterable[Path], *, grace: float = DEFAULT_GRACE_SECONDS,
            delete: bool = False, now: float | None = None) -> GcReport:
    """Find (and with `delete`, remove) the blobs of `store` that nothing live references; see the module docstring."""
    now = time.time() if now is None else now
    state_dirs = list(state_dirs)
    erased = tombstoned_on_chain(chain)
    shares = journaled_shares(state_dirs)
    on_chain, of_erased_records = chain_references(chain, store, erased=erased, ours=home_manifests(state_dirs))
    on_chain -= {cid for cid in of_erased_records & on_chain if _sealed_to_erased(store, Cid(cid), erased)}
    of_erased_records -= on_chain
    live = referenced_by_journals(state_dirs, erased=erased) | on_chain
    garbage, of_erased, unfinished, referenced, young, size = [], [], [], 0, 0, 0
    for cid, mtime in list(store.blobs()):
        if cid in live:
            referenced += 1
            continue
        old = now - mtime >= grace
        share = _key_share(store, cid) if cid in shares or old else None
        if share is not None:
            held = {e.record_id for e in share.entries}
            if not held or not held <= erased:
                referenced += 1
                if held & erased:
                    unfinished.append(cid)
                continue
            of_erased.append(cid)  # it opens only erased records
        elif cid in shares:
            referenced += 1  # named as a share, not parsable here: never guess
            continue
        elif not old:
            young += 1
            continue
        elif cid in of_erased_records:
            of_erased.append(cid)  # a tombstoned record's ciphertext: its erasure died before the unpin
        garbage.append(cid)
        size += store.size(cid)
    if delete:
        for cid in garbage:
            store.remove(cid)
    return GcReport(tuple(garbage), referenced, young, len(garbage) if delete else 0, size, tuple(of_erased),
                    tuple(unfinished))
