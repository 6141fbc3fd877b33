"""The local journal of a batch write in progress, so a crash never leaves duplicates or orphans.

`<state_dir>/batch/journal.jsonl` is an append-only log, one JSON object per line, each line
fsynced before the step it records is considered done:

    {"op": "start", "author": "0x…"}
    {"op": "stored", "fp": …, "recordId": …, "patient": …, "contentHash": …, "scope": …, "cid": …}
    {"op": "sealed", "root": …, "manifestCid": …, "manifestHash": …, "count": n}   (anchor about to be sent)
    {"op": "anchored", "root": …}
    {"op": "dropped", "fps": [...]}                                               (blob found missing)

A line is the unit of atomicity: a crash mid-append leaves a torn last line, which `open` cuts off
(nothing after it was ever acted on). Replaying the log gives the records stored but not yet
anchored, the batch sealed for anchoring if any, and the fingerprints already anchored by this
run (so re-running the same import skips them). The file is deleted when the run completes.
Fingerprints are HMACs under a key of the writer's (see `ehr_client.journal`); no health data
is written here.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from eth_utils import to_checksum_address

from ehr_client._batch_manifest import BatchLeaf
from ehr_client.errors import ConfigError, EHRError
from ehr_client.storage import Cid, parse_cid

JOURNAL_NAME = "journal.jsonl"


class BatchBusy(EHRError, BlockingIOError):
    """Another process is writing a batch with the same state directory."""


@dataclass(frozen=True)
class StoredEntry:
    """A record whose blob is stored and whose leaf awaits anchoring."""

    fingerprint: str
    record_id: bytes
    patient: str
    content_hash: bytes
    scope: int
    cid: Cid

    @property
    def leaf(self) -> BatchLeaf:
        return BatchLeaf(self.record_id, self.patient, self.content_hash, self.scope, self.cid)


@dataclass(frozen=True)
class SealedBatch:
    """The first `count` pending entries, with the manifest stored and the anchor about to be sent."""

    root: bytes
    manifest_cid: Cid
    manifest_hash: bytes
    count: int


@dataclass
class JournalState:
    author: str | None = None
    pending: list[StoredEntry] = field(default_factory=list)
    sealed: SealedBatch | None = None
    anchored: dict[str, StoredEntry] = field(default_factory=dict)

    def pending_by_fingerprint(self) -> dict[str, StoredEntry]:
        return {entry.fingerprint: entry for entry in self.pending}


def _hex(value: bytes) -> str:
    return "0x" + value.hex()


def _unhex(value: Any) -> bytes:
    return bytes.fromhex(str(value).removeprefix("0x"))


class BatchJournal:
    """Open with `with BatchJournal(state_dir, author).open() as (journal, state):`; one writer at a time."""

    def __init__(self, state_dir: Path, author: str) -> None:
        self.dir = Path(state_dir) / "batch"
        self.path = self.dir / JOURNAL_NAME
        self.author = to_checksum_address(author)
        self._handle: IO[str] | None = None
        self._started = False

    @contextmanager
    def open(self) -> Iterator[tuple[BatchJournal, JournalState]]:
        """Lock the journal (refusing a second writer) and replay it; the file is created on the first step."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.dir / "lock", "a") as lock:
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

    def _replay(self) -> JournalState:
        state = JournalState()
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return state
        complete, _, torn = data.rpartition(b"\n")
        if torn:
            with open(self.path, "r+b") as handle:
                handle.truncate(len(complete) + 1 if complete else 0)
                os.fsync(handle.fileno())
        for number, line in enumerate(complete.split(b"\n") if complete else [], start=1):
            try:
                self._apply(state, json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(
                    f"the batch journal {self.path} is damaged at line {number} ({exc}); move it aside and "
                    "check the records it lists before importing again"
                ) from None
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
        elif kind == "stored":
            state.pending.append(StoredEntry(
                str(op["fp"]), _unhex(op["recordId"]), to_checksum_address(op["patient"]), _unhex(op["contentHash"]),
                int(op["scope"]), parse_cid(str(op["cid"])),
            ))
        elif kind == "sealed":
            state.sealed = SealedBatch(_unhex(op["root"]), parse_cid(str(op["manifestCid"])),
                                       _unhex(op["manifestHash"]), int(op["count"]))
        elif kind == "anchored":
            sealed = state.sealed
            if sealed is None or sealed.root != _unhex(op["root"]):
                raise ValueError("anchored a batch that was not sealed")
            state.anchored.update((e.fingerprint, e) for e in state.pending[: sealed.count])
            del state.pending[: sealed.count]
            state.sealed = None
        elif kind == "dropped":
            gone = set(op["fps"])
            state.pending = [e for e in state.pending if e.fingerprint not in gone]
            state.sealed = None
        else:
            raise ValueError(f"unknown step {kind!r}")

    def _append(self, op: dict[str, Any]) -> None:
        if self._handle is None:
            self._handle = open(self.path, "a")
        lines = [] if self._started else [{"op": "start", "author": self.author}]
        self._handle.write("".join(json.dumps(line, separators=(",", ":")) + "\n" for line in [*lines, op]))
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._started = True

    def stored(self, state: JournalState, entry: StoredEntry) -> None:
        self._append({"op": "stored", "fp": entry.fingerprint, "recordId": _hex(entry.record_id),
                      "patient": entry.patient, "contentHash": _hex(entry.content_hash), "scope": entry.scope,
                      "cid": str(entry.cid)})
        state.pending.append(entry)

    def sealed(self, state: JournalState, batch: SealedBatch) -> None:
        self._append({"op": "sealed", "root": _hex(batch.root), "manifestCid": str(batch.manifest_cid),
                      "manifestHash": _hex(batch.manifest_hash), "count": batch.count})
        state.sealed = batch

    def anchored(self, state: JournalState, root: bytes) -> None:
        op = {"op": "anchored", "root": _hex(root)}
        self._append(op)
        self._apply(state, op)

    def dropped(self, state: JournalState, fingerprints: Sequence[str]) -> None:
        op = {"op": "dropped", "fps": list(fingerprints)}
        self._append(op)
        self._apply(state, op)

    def finish(self) -> None:
        """The run is complete: forget it."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self.path.unlink(missing_ok=True)
        self._started = False
