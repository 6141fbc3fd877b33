"""Making key shares: the data keys of a patient's records in some scopes, sealed to one grantee.

Only records the chain lists for the patient in those scopes, single or batched, are considered;
each one's header is compared with the chain and its key opened with associated data built from
the chain's facts before it is sealed again. A record whose blob was re-listed under another id,
scope or author, is missing, or was not sealed to the patient, is skipped and reported: one bad
entry cannot block the grant, and no key of a scope the grant lacks can ever be sealed. Nothing
is sealed before the chain says the grant is in force: a share made ahead of a signed grant that
is then voided would hand over keys no consent ever covered.
"""

from __future__ import annotations

from collections.abc import Collection
import time
from dataclasses import dataclass

from eth_utils import to_checksum_address

from ehr_client.chain.client import ChainClient
from ehr_client.client.directory import KeyDirectory
from ehr_client.client.keysource import check_header, own_data_key
from ehr_client.client.locate import RecordLocator
from ehr_client.client.model import Identity, Skipped, hex_id
from ehr_client.client.read import RecordReader
from ehr_client.crypto import wrap_data_key
from ehr_client.errors import BlobNotFound, DecryptionError, IntegrityError, InvalidRecord, StorageError
from ehr_client.journal import Journal, Reissue, ShareLog
from ehr_client.keyshare import KeyShare, ShareEntry
from ehr_client.storage import BlobStore, Cid


@dataclass(frozen=True)
class ShareOutcome:
    cid: Cid | None
    shared: int
    skipped: tuple[Skipped, ...]


@dataclass(frozen=True)
class ReissuedShare:
    """A key share erasure replaced: `old` is unpinned; `new` (None if nothing was left to share)
    holds the same grantee's remaining entries and is the CID to hand the grantee. A share that
    could not be read (`problem`) was left in place, not re-issued."""

    grantee: str
    old: Cid
    new: Cid | None
    dropped: int
    problem: str | None = None


class KeySharer:
    def __init__(self, identity: Identity, locator: RecordLocator, reader: RecordReader,
                 directory: KeyDirectory, journal: Journal) -> None:
        self.journal = journal
        self.identity = identity
        self.locator = locator
        self.reader = reader
        self.directory = directory

    def share(self, grantee: str, scopes: int) -> ShareOutcome:
        """Seal the data keys of the identity's active records within `scopes` to `grantee` and store the share."""
        me = self.identity.address
        grantee = to_checksum_address(grantee)
        key_version, public = self.directory.encryption_key_of(grantee)
        listing = self.locator.listing(me)
        skipped = list(listing.skipped)
        candidates = [i for i in listing.records if i.status == "active" and not i.scope & ~scopes]
        in_force = self._readable_scopes(grantee, {i.scope for i in candidates})
        entries = []
        for info in candidates:
            if info.scope not in in_force:
                skipped.append(Skipped(f"record {hex_id(info.record_id)}",
                                       f"no grant to {grantee} for its category is in force on chain: keys are "
                                       "shared only once the grant is", info.author, info.tx_hash))
                continue
            try:
                header = self.reader.header(info.cid)
                binding = check_header(info, header)
                data_key = own_data_key(self.identity, header, binding)
                if data_key is None:
                    raise DecryptionError()
            except (IntegrityError, DecryptionError, StorageError) as exc:
                reason = str(exc) or "its key is not sealed to the patient"
                skipped.append(Skipped(f"record {hex_id(info.record_id)}", reason, info.author, info.tx_hash))
                continue
            wrapped = wrap_data_key(data_key, public, associated_data=binding.associated_data)
            entries.append(ShareEntry(info.record_id, header.version, key_version, wrapped))
        if not entries:
            return ShareOutcome(None, 0, tuple(skipped))
        cid = self.reader.store.put(KeyShare(me, grantee, tuple(entries)).to_bytes())
        self.journal.shared(cid)
        return ShareOutcome(cid, len(entries), tuple(skipped))

    def _readable_scopes(self, grantee: str, scopes: set[int]) -> set[int]:
        return scopes_in_force(self.locator.chain, self.identity.address, grantee, scopes)

    def reissue_without(self, record_ids: Collection[bytes]) -> list[ReissuedShare]:
        """`reissue_without` over this identity's shares.log."""
        return reissue_without(self.reader.store, self.journal.share_log, self.identity.address, record_ids)


def reissue_without(store: BlobStore, shares: ShareLog, patient: str,
                    record_ids: Collection[bytes]) -> list[ReissuedShare]:
    """Replace every key share of `patient` logged in `shares` that holds a data key of `record_ids`
    by one without those entries (logged in `shares` too), then unpin the old share; return every
    re-issue that ever dropped one of `record_ids`, each with the newest share that replaced it.

    Only live shares are re-issued: one the log says was replaced is removed again if it is back in
    the store (a crash before its removal, or a grantee storing the copy it was given), never
    re-issued. Crash-safe by order: the new share is stored and logged, and the re-issue logged,
    before the old one goes; the new bytes are a deterministic function of the old ones, so a rerun after a crash
    lands on the same CID, and the answer comes from the log, so a rerun (or anyone asking again)
    is told every new CID. A damaged share (its bytes do not match its address) is reported and left
    for the operator to restore; shares already gone, of another patient, or unparsable are skipped.
    """
    damaged = []
    replaced = {r.old for r in shares.reissues()}
    for old in replaced:  # gone already, unless a crash came before its removal or someone stored it again
        if store.has(Cid(old)):
            store.remove(Cid(old))
    for cid in (Cid(c) for c in shares.cids() if c not in replaced):
        try:
            share = KeyShare.from_bytes(store.get(cid))
        except (BlobNotFound, InvalidRecord):
            continue
        except IntegrityError:
            damaged.append(ReissuedShare("", cid, None, 0, problem="damaged in storage (its bytes do not match its "
                                         "address): restore it from a replica, then erase again"))
            continue
        if share.patient != patient:
            continue
        kept = share.without(record_ids)
        if len(kept.entries) == len(share.entries):
            continue
        new = None
        if kept.entries:
            new = store.put(kept.to_bytes())
            shares.add(new)
        dropped = tuple(hex_id(e.record_id) for e in share.entries if e.record_id in record_ids)
        shares.reissued(Reissue(str(cid), None if new is None else str(new), share.grantee, dropped))
        store.remove(cid)
    return _told(shares, {hex_id(r) for r in record_ids}) + damaged


def _told(shares: ShareLog, erased: set[str]) -> list[ReissuedShare]:
    logged = shares.reissues()
    replaced_by: dict[str, str | None] = {}
    for r in logged:
        replaced_by.setdefault(r.old, r.new)  # the first re-issue of a share is the one that counts
    told: dict[str, ReissuedShare] = {}
    for r in logged:
        if not erased & set(r.dropped):
            continue
        newest, seen = r.new, set()
        while newest is not None and newest in replaced_by and newest not in seen:
            seen.add(newest)
            newest = replaced_by[newest]
        told[r.old] = ReissuedShare(r.grantee, Cid(r.old), None if newest is None else Cid(newest), len(r.dropped))
    return list(told.values())


def scopes_in_force(chain: ChainClient, patient: str, grantee: str, scopes: set[int]) -> set[int]:
    """Of `scopes`, those `patient`'s grant lets `grantee` read now. A key share is a bearer
    capability, so it is made only under a grant in force, never ahead of one; "now" is the later
    of the chain's last block and this machine's clock, since a quiet chain's time lags (a grant
    that has ended by the clock is over even before the next block)."""
    if not scopes:
        return set()
    ordered = sorted(scopes)
    consent = chain.consent.functions
    answers = chain.batch_call([consent.getGrant(patient, grantee), *(consent.canRead(patient, grantee, s)
                                                                      for s in ordered)], action="check the grant")
    ends = int(answers[0][1])
    if ends <= max(int(time.time()), chain.now()):
        return set()
    return {scope for scope, ok in zip(ordered, answers[1:], strict=True) if ok}
