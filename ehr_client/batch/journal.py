"""The local journal of a batch write in progress, so a crash never leaves duplicates or orphans.

`<state_dir>/batch/journal.jsonl` is an append-only log, one step per line, each line fsynced
before the step it records is considered done. A line is ``<json>\\t<sha256 of the json, 16 hex>``:

    {"op": "start", "author": "0x…"}
    {"op": "open", "key": "0x…", "patient": "0x…", "scope": s}     (a batch of one patient and scope begins)
    {"op": "stored", "key": …, "index": i, "fp": …, "scope": …, "contentHash": …, "cid": …}
    {"op": "sealed", "key": …, "root": …, "manifestCid": …, "manifestHash": …}   (anchor about to be sent)
    {"op": "anchored", "key": …}
    {"op": "abandoned", "key": …}                                        (a blob vanished before sealing)

A crash mid-append leaves a torn last line (no newline, or zeros), which `open` cuts off: nothing
after it was ever acted on. `stored` lines of a batch write are synced together, with the batch's
blobs, before the batch is sealed (a group commit); every other line is fsynced as it is written.
Any other damage (a bad checksum, a line that does not parse, a step that does not follow)
raises `JournalDamaged` naming the line and the way out; nothing is replayed past it.

Anchored fingerprints are also appended to `<state_dir>/batch/anchored.log` (fingerprint and
record id, a checked line each, fsynced before the journal's `anchored` line), which outlives the journal, so running
the same import again after it completed, or after a crash right after it completed, skips what
is on chain instead of writing it twice; and each anchored batch (key, patient, scopes, root,
leaf count, manifest hash and CID) to `batches.log`, so a batch a chain lost can be anchored
again under the same ids (`EHRClient.recover`). The two logs must agree (as many records as the
batches hold): one lost or cut short is reported, since running an import again without it would
write what is on chain a second time. Fingerprints are HMACs under a key of the writer's; no
health data is written here.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from eth_utils import to_checksum_address

from ehr_client.client.manifest import BatchLeaf
from ehr_client.errors import ConfigError, EHRError
from ehr_client.journal import (
    JournalDamaged,
    append_line,
    checked_line,
    checked_payload,
    damaged_line,
    read_checked,
    unwritable,
)
from ehr_client.storage import Cid, parse_cid

JOURNAL_NAME = "journal.jsonl"
ANCHORED_NAME = "anchored.log"
BATCHES_NAME = "batches.log"


class BatchBusy(EHRError, BlockingIOError):
    """Another process is writing a batch with the same state directory."""


@dataclass(frozen=True)
class StoredEntry:
    """A record whose blob is stored and whose leaf awaits anchoring."""

    fingerprint: str
    index: int
    scope: int
    content_hash: bytes
    cid: Cid

    @property
    def leaf(self) -> BatchLeaf:
        return BatchLeaf(self.scope, self.content_hash, self.cid)


@dataclass(frozen=True)
class Sealed:
    root: bytes
    manifest_cid: Cid
    manifest_hash: bytes


@dataclass
class OpenBatch:
    """The records of one patient collected under one batch key."""

    key: bytes
    patient: str
    scope: int | None = None
    entries: list[StoredEntry] = field(default_factory=list)
    sealed: Sealed | None = None


@dataclass
class JournalState:
    author: str | None = None
    batches: dict[bytes, OpenBatch] = field(default_factory=dict)

    def by_fingerprint(self) -> dict[str, tuple[OpenBatch, StoredEntry]]:
        return {e.fingerprint: (b, e) for b in self.batches.values() for e in b.entries}


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _unhex(value: Any) -> bytes:
    return bytes.fromhex(str(value).removeprefix("0x"))


class BatchJournal:
    """Open with `with BatchJournal(state_dir, author).open() as (journal, state):`; one writer at a time."""

    def __init__(self, state_dir: Path, author: str) -> None:
        self.dir = Path(state_dir) / "batch"
        self.path = self.dir / JOURNAL_NAME
        self.anchored_path = self.dir / ANCHORED_NAME
        self.batches_path = self.dir / BATCHES_NAME
        self.author = to_checksum_address(author)
        self._handle: IO[bytes] | None = None
        self._started = False

    @contextmanager
    def open(self) -> Iterator[tuple[BatchJournal, JournalState]]:
        """Lock the journal (refusing a second writer) and replay it; the file is created on the first step."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            lock = open(self.dir / "lock", "a")
        except OSError as exc:
            raise unwritable(self.dir, exc) from None
        with lock:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise BatchBusy(
                    f"another batch write is running with the state directory {self.dir.parent}; wait for it to "
                    "finish (or stop it), then run this again: it will resume where that one stopped"
                ) from None
            state = self._replay()
            self._started = state.author is not None
            try:
                yield self, state
            finally:
                if self._handle is not None:
                    self._handle.close()
                    self._handle = None

    def _damaged(self, number: int, why: str) -> JournalDamaged:
        return JournalDamaged(
            f"the batch journal {self.path} is damaged at line {number} ({why}); nothing was replayed. Move it "
            f"aside (mv {self.path} {self.path}.damaged) and run the same import again: records already on chain "
            "are skipped, the rest is written again; `ehr storage gc` then removes blobs nothing references"
        )

    def _replay(self) -> JournalState:
        state = JournalState()
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return state
        # Lines a group commit had not synced yet can come back after a crash as zeros (on file
        # systems that extend the file before its data is written): having no newline, they are
        # a torn tail too.
        complete, _, torn = data.rpartition(b"\n")
        if torn:
            try:
                with open(self.path, "r+b") as handle:
                    handle.truncate(len(complete) + 1 if complete else 0)
                    os.fsync(handle.fileno())
            except OSError as exc:
                raise unwritable(self.dir, exc) from None
        for number, line in enumerate(complete.split(b"\n") if complete else [], start=1):
            try:
                payload = checked_payload(line)
            except ValueError:
                raise self._damaged(number, "checksum mismatch") from None
            try:
                self._apply(state, json.loads(payload))
            except (ValueError, KeyError, TypeError) as exc:
                raise self._damaged(number, str(exc)) from None
        if state.author is not None and state.author != self.author:
            raise ConfigError(
                f"the batch journal {self.path} belongs to {state.author}, not {self.author}; use that identity's "
                "own state directory"
            )
        return state

    @staticmethod
    def _apply(state: JournalState, op: dict[str, Any]) -> None:
        kind = op["op"]
        if kind == "start":
            state.author = to_checksum_address(op["author"])
            return
        key = _unhex(op["key"])
        if kind == "open":
            if key in state.batches:
                raise ValueError("batch opened twice")
            scope = op.get("scope")
            state.batches[key] = OpenBatch(key, to_checksum_address(op["patient"]), None if scope is None else int(scope))
            return
        batch = state.batches[key]
        if kind == "stored":
            index = int(op["index"])
            if batch.sealed is not None or index != len(batch.entries):
                raise ValueError("record stored out of order")
            batch.entries.append(StoredEntry(str(op["fp"]), index, int(op["scope"]), _unhex(op["contentHash"]),
                                             parse_cid(str(op["cid"]))))
        elif kind == "sealed":
            batch.sealed = Sealed(_unhex(op["root"]), parse_cid(str(op["manifestCid"])), _unhex(op["manifestHash"]))
        elif kind in ("anchored", "abandoned"):
            if kind == "anchored" and batch.sealed is None:
                raise ValueError("anchored a batch that was not sealed")
            del state.batches[key]
        else:
            raise ValueError(f"unknown step {kind!r}")

    def _append(self, op: dict[str, Any], *, durable: bool = True) -> None:
        """Append a step, fsynced (with every line before it) unless not `durable`. If that fails (a
        full disk), the torn line is cut off and the handle dropped, so the journal ends at the last
        step that was done."""
        ops = [] if self._started else [{"op": "start", "author": self.author}]
        data = b"".join(checked_line(json.dumps(item, separators=(",", ":")).encode()) for item in [*ops, op])
        try:
            if self._handle is None:
                self._handle = open(self.path, "ab")
            size = self._handle.seek(0, os.SEEK_END)
            try:
                self._handle.write(data)
                self._handle.flush()
                if durable:
                    os.fsync(self._handle.fileno())
            except OSError:
                with contextlib.suppress(OSError):  # its buffer cannot be written either; the file closes anyway
                    self._handle.close()
                self._handle = None
                with open(self.path, "r+b") as handle:
                    handle.truncate(size)
                raise
        except OSError as exc:
            raise unwritable(self.dir, exc) from None
        self._started = True

    def opened(self, state: JournalState, batch: OpenBatch) -> None:
        self._append({"op": "open", "key": _hex(batch.key), "patient": batch.patient, "scope": batch.scope})
        state.batches[batch.key] = batch

    def stored(self, batch: OpenBatch, entry: StoredEntry, *, durable: bool = True) -> None:
        """A record's blob was stored. With `durable=False` the line waits for `sync` (a group commit:
        until then a crash may lose it, which leaves the blob an orphan for `ehr storage gc`)."""
        self._append({"op": "stored", "key": _hex(batch.key), "index": entry.index, "fp": entry.fingerprint,
                      "scope": entry.scope, "contentHash": _hex(entry.content_hash), "cid": str(entry.cid)},
                     durable=durable)
        batch.entries.append(entry)

    def sync(self) -> None:
        """Make every line appended so far durable."""
        if self._handle is None:
            return
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as exc:
            raise unwritable(self.dir, exc) from None

    def sealed(self, batch: OpenBatch, sealed: Sealed) -> None:
        self._append({"op": "sealed", "key": _hex(batch.key), "root": _hex(sealed.root),
                      "manifestCid": str(sealed.manifest_cid), "manifestHash": _hex(sealed.manifest_hash)})
        batch.sealed = sealed

    def anchored(self, state: JournalState, batch: OpenBatch, record_ids: list[bytes], *, scopes: int) -> None:
        sealed = batch.sealed
        assert sealed is not None
        payload = json.dumps({"key": _hex(batch.key), "patient": batch.patient, "scopes": scopes,
                              "root": _hex(sealed.root), "count": len(batch.entries),
                              "manifestHash": _hex(sealed.manifest_hash), "manifestCid": str(sealed.manifest_cid)},
                             separators=(",", ":"), sort_keys=True).encode()
        lines = b"".join(checked_line(f"{e.fingerprint} {_hex(r)}".encode())
                         for e, r in zip(batch.entries, record_ids, strict=True))
        try:  # anchored.log first: a crash between the two leaves it ahead, which `check_logs` reports
            append_line(self.anchored_path, lines)
            append_line(self.batches_path, checked_line(payload))
        except OSError as exc:
            raise unwritable(self.dir, exc) from None
        self._append({"op": "anchored", "key": _hex(batch.key)})
        del state.batches[batch.key]

    def abandoned(self, state: JournalState, batch: OpenBatch) -> None:
        self._append({"op": "abandoned", "key": _hex(batch.key)})
        del state.batches[batch.key]

    def anchored_batches(self) -> list[dict[str, Any]]:
        """Every batch this state directory anchored (as `anchored` logged it), oldest first."""
        then = "run `ehr record recover` (a batch of that line, if a chain lost it, must be written again)"
        found = []
        for number, payload in enumerate(read_checked(self.batches_path, then=then), start=1):
            try:
                found.append(dict(json.loads(payload)))
            except (ValueError, TypeError) as exc:
                raise damaged_line(self.batches_path, number, str(exc), then=then) from None
        return found

    def anchored_fingerprints(self) -> dict[str, bytes]:
        """Fingerprint -> record id of every record this state directory's batches anchored."""
        then = "run `ehr record list` for the patients imported and import only the records missing there"
        found = {}
        for number, payload in enumerate(read_checked(self.anchored_path, then=then), start=1):
            fingerprint, _, record_id = payload.decode().partition(" ")
            if len(record_id) != 66:
                raise damaged_line(self.anchored_path, number, "not a fingerprint and a record id", then=then)
            found[fingerprint] = _unhex(record_id)
        return found

    def check_logs(self) -> dict[str, bytes]:
        """The anchored fingerprints, once anchored.log and batches.log are found to agree: as many
        records as the logged batches hold (call it after interrupted batches were settled: a crash
        between the two appends is mended by settling that batch again). A log deleted or cut short would make an import written
        again land a second time, so it is reported (`JournalDamaged`) instead."""
        anchored = self.anchored_fingerprints()
        logged = sum({batch["key"]: int(batch["count"]) for batch in self.anchored_batches()}.values())
        if len(anchored) != logged:
            raise JournalDamaged(
                f"{self.anchored_path} names {len(anchored)} anchored records but {self.batches_path} holds batches "
                f"of {logged}: one of them was deleted or cut short, and writing the import again could write "
                "records that are on chain a second time. Nothing was written. Run `ehr record recover` to see what "
                "is on chain, move both logs aside, and import only the records `ehr record list` does not show"
            )
        return anchored

    def finish(self, state: JournalState) -> None:
        """Nothing is in flight any more: forget the journal (anchored.log stays)."""
        if state.batches:
            return
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self.path.unlink(missing_ok=True)
        self._started = False
