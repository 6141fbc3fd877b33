"""A record's versions as the chain states them, whether or not each version's stored bytes verify.

Which version was amended onto which is a fact of the chain (`RecordAmended`, and the `previousId`
of `RecordAdded`), and so is each version's status (`recordStatus`); neither needs the version's
pointer or blob. Erasure goes by these facts: a grantee with amend access may anchor a version
whose pointer is not a CID (the chain does not check pointers), and that version is still a live
version of the patient's record that must be tombstoned, which needs only its id (every version
amended onto another is stored on chain on its own).

Each `Version` carries its `RecordInfo` when it verifies (what unpinning needs), else why not, so
the caller tombstones every version and reports those it could not unpin.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ehr_client.chain.calls import Call, call_many
from ehr_client.chain.client import EventRecord
from ehr_client.chain.types import Status
from ehr_client.client.locate import RecordLocator, single_info, unknown_record
from ehr_client.client.model import RecordInfo
from ehr_client.errors import IntegrityError


@dataclass(frozen=True)
class Version:
    """One version of a record: what the chain says, and its `RecordInfo` when it verifies (else `problem`)."""

    record_id: bytes
    previous_id: bytes | None
    patient: str
    author: str
    status: Status
    info: RecordInfo | None
    problem: str | None = None

    @property
    def tombstoned(self) -> bool:
        return self.status == Status.TOMBSTONED

    def tombstone_target(self) -> RecordInfo | bytes:
        """What `EHRClient.tombstone` takes for this version: its info (a batched record's proof), else its id."""
        return self.record_id if self.info is None else self.info


def versions(locator: RecordLocator, record_ids: Sequence[bytes]) -> list[Version]:
    """The versions with these ids, in this order, with their statuses (one round trip for the single
    records; a batched record is found through its batch as `RecordLocator.find` does).

    Raises RecordNotFound for an id the chain does not know (before any log query: anyone may name
    any id to the portal), and IntegrityError for a batched record never amended nor tombstoned whose
    batch cannot be verified (only its batch's proof addresses it). Each single record's event is
    asked in the 256 blocks the registry names (`anchoredNear`), never the whole chain."""
    if not record_ids:
        return []
    chain = locator.chain
    nears = call_many(chain, [Call(chain.records, "anchoredNear", (r,)) for r in record_ids], action="look up record")
    ranges: dict[tuple[int, int], list[bytes]] = {}
    for record_id, (_, first, last, batch_id) in zip(record_ids, nears, strict=True):
        if int(last) == 0 and not any(batch_id):
            raise unknown_record(record_id)
        if not any(batch_id):
            ranges.setdefault((int(first), int(last)), []).append(record_id)
    added = {bytes(e.args["recordId"]): e for (first, last), ids in ranges.items()
             for e in chain.get_events("RecordRegistry", "RecordAdded", filters={"recordId": ids},
                                       from_block=first, to_block=last)}
    found = []
    for record_id, (stored, *_) in zip(record_ids, nears, strict=True):
        status = Status(int(stored))
        event = added.get(record_id)
        found.append(_single(event, status) if event is not None else _batched(locator, record_id, status))
    return found


def _amended_since(locator: RecordLocator, record_ids: Sequence[bytes]) -> tuple[list[bytes], int]:
    """Those of `record_ids` that may have been amended (an active record never was: amending one
    supersedes it), and the first block any of them can have been anchored in."""
    chain = locator.chain
    nears = call_many(chain, [Call(chain.records, "anchoredNear", (r,)) for r in record_ids], action="look up record")
    amended = [(r, int(first), int(last)) for r, (stored, first, last, _) in zip(record_ids, nears, strict=True)
               if Status(int(stored)) not in (Status.NONE, Status.ACTIVE)]
    starts = [first for _, first, last in amended if last != 0]
    return [r for r, _, _ in amended], min(starts, default=chain.deployment.deploy_block)


def predecessors(locator: RecordLocator, version: Version) -> list[Version]:
    """The versions `version` was amended onto, newest first, down to the first version."""
    found: list[Version] = []
    previous = version.previous_id
    while previous is not None:
        (earlier,) = versions(locator, [previous])
        found.append(earlier)
        previous = earlier.previous_id
    return found


def successors(locator: RecordLocator, record_ids: Collection[bytes]) -> list[Version]:
    """Every version amended onto one of `record_ids`, and onto those, transitively (not `record_ids`
    themselves), oldest generation first; unverifiable ones included, with their problem."""
    known, found = set(record_ids), []
    frontier = sorted(known)
    while frontier:
        # An amendment is mined after what it amends: the logs from the oldest of them on, not the deployment.
        candidates, since = _amended_since(locator, frontier)
        if not candidates:
            break
        amended = locator.chain.get_events("RecordRegistry", "RecordAmended", filters={"previousId": candidates},
                                           from_block=since)
        frontier = sorted({bytes(e.args["recordId"]) for e in amended} - known)
        known.update(frontier)
        found += versions(locator, frontier)
    return found


def _single(event: EventRecord, status: Status) -> Version:
    args = event.args
    previous = bytes(args["previousId"])
    try:
        info: RecordInfo | None = single_info(event).with_status(status)
        problem = None
    except IntegrityError as exc:
        info, problem = None, str(exc)
    return Version(bytes(args["recordId"]), previous if any(previous) else None, str(args["patient"]),
                   str(args["author"]), status, info, problem)


def _batched(locator: RecordLocator, record_id: bytes, status: Status) -> Version:
    try:
        info = locator.find(record_id)
    except IntegrityError as exc:
        located = locator.batch_index.locate(record_id)
        if status == Status.NONE or located is None:
            raise  # never amended nor tombstoned: only the batch's proof addresses it, and that needs the manifest
        event, _ = located
        return Version(record_id, None, str(event.args["patient"]), str(event.args["author"]), status, None, str(exc))
    return Version(record_id, None, info.patient, info.author, status, info)


__all__ = ["Version", "predecessors", "successors", "versions"]
