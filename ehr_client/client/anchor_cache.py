"""A patient's anchoring events (`RecordAdded`, `BatchAnchored`) up to a settled block: the cursor
that lets a listing ask the node only for the blocks after it, so its cost follows the patient's
records and the blocks since the last listing, not the length of the chain.

What is kept: every anchoring event of the patient in the blocks from the deployment to the cursor,
the cursor's block number and its hash. The cursor only ever sits at least `depth` blocks below the
head the listing saw, so a short fork (Clique) never changes what is kept. Each listing asks for the
cursor block's hash in the same JSON-RPC batch as its log query; a hash that differs (a reorganisation
deeper than `depth`, a reset chain) throws the cache away and the listing rescans from the deployment.

Where: with a directory (a client's state directory; the CLI runs one process per command, so memory
alone would not help `ehr record list`), one JSON file per patient at
`<dir>/listing-<chainId>-<registry[2:12]>/<patient>.json`; without one, in memory. An address with
nothing anchored gets no cursor (a portal lists any address it is asked about). A file is written
to a temporary file, fsynced and renamed over the old one, so a kill leaves the old cache or the new
one. Format (`"format": "ehr-listing-cursor/1"`):

    {"format", "chain_id", "registry", "deploy_block", "registry_block_hash", "patient",
     "cursor", "cursor_hash", "events": [{"name", "block", "log_index", "tx", "time", "args"}]}

`args` are the event's arguments: numbers as numbers, addresses as strings, byte strings as
{"hex": "0x..."}. They are ids, hashes, CIDs and addresses the chain's events already publish; no
health data. The file is a cache and the chain is the truth: a file that cannot be read, is truncated,
has another format, or names another chain, deployment or patient is ignored and replaced by the next
listing, never an error. What the listing returns is still checked against the chain's state each
time (`ehr_client.client.locate`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from ehr_client._files import replace_atomically
from ehr_client.chain.client import ChainClient, EventRecord

log = logging.getLogger("ehr_client.listing")

FORMAT = "ehr-listing-cursor/1"
DEFAULT_DEPTH = 64  # blocks; Ethereum's two epochs, far beyond a Clique fork
ANCHORING_EVENTS = ("RecordAdded", "BatchAnchored")
_STALE_TEMP_SECONDS = 600.0


@dataclass(frozen=True)
class Anchors:
    """A patient's anchoring events in blocks up to `cursor` (inclusive), oldest first."""

    cursor: int
    cursor_hash: str
    events: tuple[EventRecord, ...]


class AnchorCache:
    """The cursor of each patient for one deployment, on disk under `directory` or in memory."""

    def __init__(self, chain: ChainClient, directory: Path | None, *, depth: int = DEFAULT_DEPTH) -> None:
        if depth < 1:
            raise ValueError(f"the listing cache's depth is at least 1 block, not {depth}")
        self.chain = chain
        self.depth = depth
        deployment = chain.deployment
        self._identity: dict[str, Any] = {
            "chain_id": deployment.chain_id,
            "registry": to_checksum_address(chain.records.address),
            "deploy_block": deployment.deploy_block,
            "registry_block_hash": None if deployment.registry_block is None else deployment.registry_block[1],
        }
        self.directory = None if directory is None else (
            Path(directory) / f"listing-{deployment.chain_id}-{str(chain.records.address)[2:12].lower()}")
        self._memory: dict[str, Anchors] = {}
        self._lock = threading.Lock()

    def path(self, patient: str) -> Path | None:
        return None if self.directory is None else self.directory / f"{to_checksum_address(patient)}.json"

    def load(self, patient: str) -> Anchors | None:
        """The patient's cursor, or None when there is none or it cannot be used."""
        patient = to_checksum_address(patient)
        path = self.path(patient)
        if path is None:
            with self._lock:
                return self._memory.get(patient)
        try:
            document = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # unreadable, truncated, not JSON
            log.info("listing cache %s unusable (%s); rescanning from the deployment", path.name, type(exc).__name__)
            return None
        anchors = self._parse(document, patient)
        if anchors is None:
            log.info("listing cache %s is from another format, chain, deployment or patient, or damaged; "
                     "rescanning from the deployment", path.name)
        return anchors

    def save(self, patient: str, anchors: Anchors) -> None:
        """Keep the cursor. A cache that cannot be written is logged, never raised: the listing is complete."""
        patient = to_checksum_address(patient)
        path = self.path(patient)
        if path is None:
            with self._lock:
                self._memory[patient] = anchors
            return
        document = {"format": FORMAT, **self._identity, "patient": patient, "cursor": anchors.cursor,
                    "cursor_hash": anchors.cursor_hash, "events": [_event_json(e) for e in anchors.events]}
        try:
            _write_atomically(path, json.dumps(document, separators=(",", ":")).encode())
        except OSError as exc:
            log.warning("could not write the listing cache %s (%s); the next listing rescans more blocks",
                        path, exc.strerror or exc)

    def drop(self, patient: str) -> None:
        patient = to_checksum_address(patient)
        path = self.path(patient)
        if path is None:
            with self._lock:
                self._memory.pop(patient, None)
            return
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not remove the listing cache %s (%s)", path, exc.strerror or exc)

    def _parse(self, document: Any, patient: str) -> Anchors | None:
        try:
            if not isinstance(document, dict) or document.get("format") != FORMAT:
                return None
            if any(document.get(key) != value for key, value in self._identity.items()):
                return None
            if document.get("patient") != patient:
                return None
            cursor, cursor_hash = document["cursor"], document["cursor_hash"]
            if not (_is_int(cursor) and cursor >= self._identity["deploy_block"] and _is_hash(cursor_hash)):
                return None
            events = tuple(_event_of(raw) for raw in document["events"])
        except (KeyError, TypeError, ValueError):
            return None
        for event in events:
            owner = event.args.get("patient")
            if event.block_number > cursor or not isinstance(owner, str) or to_checksum_address(owner) != patient:
                return None
        positions = [(e.block_number, e.log_index) for e in events]
        if len(set(positions)) != len(positions):
            return None
        return Anchors(cursor, cursor_hash, events)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_hash(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 66 and value.startswith("0x") and bool(bytes.fromhex(value[2:]))


def _event_json(event: EventRecord) -> dict[str, Any]:
    args = {k: {"hex": "0x" + v.hex()} if isinstance(v, bytes) else v for k, v in event.args.items()}
    return {"name": event.name, "block": event.block_number, "log_index": event.log_index, "tx": event.tx_hash,
            "time": event.timestamp, "args": args}


def _event_of(raw: Any) -> EventRecord:
    """An event as `_event_json` wrote it; ValueError/TypeError/KeyError for anything else."""
    if not isinstance(raw, dict) or raw["name"] not in ANCHORING_EVENTS or not isinstance(raw["args"], dict):
        raise ValueError("not an anchoring event")
    args: dict[str, Any] = {}
    for key, value in raw["args"].items():
        if isinstance(value, dict):
            text = value["hex"]
            if not isinstance(text, str) or not text.startswith("0x"):
                raise ValueError("malformed bytes")
            args[str(key)] = bytes.fromhex(text[2:])
        elif _is_int(value) or isinstance(value, str):
            args[str(key)] = value
        else:
            raise ValueError("malformed argument")
    block, index, tx, stamp = raw["block"], raw["log_index"], raw["tx"], raw["time"]
    if not (_is_int(block) and _is_int(index) and _is_int(stamp) and _is_hash(tx)):
        raise ValueError("malformed position")
    return EventRecord("RecordRegistry", raw["name"], args, block, index, tx, stamp)


def _write_atomically(path: Path, data: bytes) -> None:
    """`data` at `path`, or the old file: a temporary file, fsynced, renamed over it, directory fsynced.
    Temporary files a killed writer left are removed once they are old enough not to be another's."""
    path.parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for stale in path.parent.glob(f".{path.name}.*"):
        try:
            if now - stale.stat().st_mtime > _STALE_TEMP_SECONDS:
                stale.unlink()
        except OSError:
            pass
    replace_atomically(path, data)
    try:
        directory = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(directory)
    except OSError:
        pass
    finally:
        os.close(directory)
