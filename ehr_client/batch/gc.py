"""Collect blobs nothing references: what a crash left stored but never anchored.

A blob is kept if anything could still need it:
- the chain: a record's `RecordAdded` pointer, a batch's manifest and every leaf of it;
- a journal of any wallet of the home: pending single writes, acknowledged writes, open or sealed
  batches, anchored batches' manifests, and the key shares a wallet stored (their CIDs travel off
  chain, with the grants);
- age: anything younger than the grace period (a write in flight stores before it journals);
- a key share, even one no log names: its CID went off chain with a grant, and a shares.log
  lost or cut short must not cost a grantee their keys (shares are small).
Everything else is garbage. A dry run (the default) only reports; a damaged journal stops the
collection (`JournalDamaged`) rather than risk deleting what it would have protected.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ehr_client.batch.journal import BatchJournal
from ehr_client.chain.client import ChainClient
from ehr_client.client.manifest import BatchManifest
from ehr_client.errors import EHRError
from ehr_client.journal import Journal, JournalDamaged, checked_payload
from ehr_client.keyshare import KeyShare
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


def referenced_on_chain(chain: ChainClient, store: LocalStore) -> set[str]:
    """Every blob the chain points at: record pointers, batch manifests and their leaves."""
    found: set[str] = set()
    for event in chain.get_events("RecordRegistry", "RecordAdded"):
        try:
            found.add(cid_from_bytes(bytes(event.args["cid"])))
        except EHRError:
            continue
    for event in chain.get_events("RecordRegistry", "BatchAnchored"):
        try:
            manifest_cid = cid_from_bytes(bytes(event.args["manifestCid"]))
        except EHRError:
            continue
        found.add(manifest_cid)
        if not store.has(manifest_cid):
            continue
        try:
            manifest = BatchManifest.from_bytes(store.get(manifest_cid))
        except EHRError:
            continue
        found.update(str(leaf.cid) for leaf in manifest.leaves)
    return found


def referenced_by_journals(state_dirs: Iterable[Path]) -> set[str]:
    """Every blob a journal of these state directories names (damage raises JournalDamaged)."""
    found: set[str] = set()
    for state in state_dirs:
        journal = Journal(state, b"")
        found.update(entry.cid for entry in journal.pending())
        found.update(entry.cid for entry in journal.acknowledged())
        found.update(journal.shares())
        batch = BatchJournal(state, "0x" + "00" * 20)
        found.update(str(b["manifestCid"]) for b in batch.anchored_batches())
        found.update(_open_batch_cids(batch.path))
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


def _is_key_share(store: LocalStore, cid: Cid) -> bool:
    try:
        if store.size(cid) > _MAX_SHARE_BYTES:
            return False
        data = store.get(cid)
        if not data.startswith(b"{"):  # a sealed record package starts with its binary header
            return False
        KeyShare.from_bytes(data)
    except EHRError:
        return False
    return True


def collect(chain: ChainClient, store: LocalStore, state_dirs: Iterable[Path], *, grace: float = DEFAULT_GRACE_SECONDS,
            delete: bool = False, now: float | None = None) -> GcReport:
    """Find (and with `delete`, remove) the blobs of `store` that nothing references; see the module docstring."""
    now = time.time() if now is None else now
    keep = referenced_by_journals(state_dirs) | referenced_on_chain(chain, store)
    garbage, referenced, young, size = [], 0, 0, 0
    for cid, mtime in list(store.blobs()):
        if cid in keep:
            referenced += 1
        elif now - mtime < grace:
            young += 1
        elif _is_key_share(store, cid):
            referenced += 1
        else:
            garbage.append(cid)
            size += store.size(cid)
    if delete:
        for cid in garbage:
            store.remove(cid)
    return GcReport(tuple(garbage), referenced, young, len(garbage) if delete else 0, size)
