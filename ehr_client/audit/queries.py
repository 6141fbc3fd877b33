"""Read the audit index: trails by patient, record or member, and the look-ups the monitor rules need.

Rows are ordered by position on chain: (block, transaction index, log index), a failed
transaction (which has no logs) taking log index -1.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_utils import is_address, to_checksum_address

from ehr_client.errors import ConfigError

Position = tuple[int, int, int]

_EVENT_COLUMNS = ("tx_hash, log_index, block_number, tx_index, timestamp, contract, name, sender, actor, patient, "
                  "subject, record_id, related_record, detail, args")
_TX_COLUMNS = ("tx_hash, -1, block_number, tx_index, timestamp, contract, function, sender, actor, patient, "
               "subject, record_id, related_record, detail, args, status, error, error_args")


@dataclass(frozen=True)
class AuditEntry:
    """One on-chain fact about a patient's records, with block time and transaction."""

    timestamp: int
    block_number: int
    log_index: int
    tx_hash: str
    event: str
    actor: str
    record_id: bytes | None
    detail: str


@dataclass(frozen=True)
class AuditRow:
    """One fact in an audit trail: an event, or a transaction that reverted (`outcome` "failed")."""

    kind: str  # "event" or "transaction"
    name: str  # the event name, or the function a transaction called
    contract: str
    timestamp: int
    block_number: int
    tx_index: int
    log_index: int  # -1 for a transaction row
    tx_hash: str
    sender: str | None
    actor: str | None
    patient: str | None
    subject: str | None
    record_id: str | None
    related_record: str | None
    detail: str
    outcome: str = "success"
    error: str | None = None
    args: dict[str, Any] = field(default_factory=dict, repr=False)
    error_args: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def position(self) -> Position:
        return (self.block_number, self.tx_index, self.log_index)

    @property
    def failed(self) -> bool:
        return self.outcome == "failed"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (addresses, ids, times; never record contents)."""
        return {
            "kind": self.kind, "name": self.name, "contract": self.contract, "timestamp": self.timestamp,
            "blockNumber": self.block_number, "txIndex": self.tx_index,
            "logIndex": None if self.log_index < 0 else self.log_index, "txHash": self.tx_hash,
            "sender": self.sender, "actor": self.actor, "patient": self.patient, "subject": self.subject,
            "recordId": self.record_id, "relatedRecord": self.related_record, "detail": self.detail,
            "outcome": self.outcome, "error": self.error,
        }

    def to_audit_entry(self) -> AuditEntry:
        """The row as an `AuditEntry` (what `EHRClient.audit_trail` returns)."""
        detail = self.detail if not self.failed else f"{self.detail} -> REVERTED ({self.error or 'no reason'})"
        return AuditEntry(
            timestamp=self.timestamp, block_number=self.block_number, log_index=self.log_index, tx_hash=self.tx_hash,
            event=self.name if not self.failed else f"{self.name} (failed)", actor=self.actor or self.sender or "",
            record_id=bytes.fromhex(self.record_id[2:]) if self.record_id else None, detail=detail,
        )


def _event_row(r: Sequence[Any]) -> AuditRow:
    return AuditRow("event", r[6], r[5], r[4], r[2], r[3], r[1], r[0], r[7], r[8], r[9], r[10], r[11], r[12], r[13],
                    args=json.loads(r[14]))


def _tx_row(r: Sequence[Any]) -> AuditRow:
    return AuditRow("transaction", r[6], r[5], r[4], r[2], r[3], -1, r[0], r[7], r[8], r[9], r[10], r[11], r[12],
                    r[13], "success" if r[15] == 1 else "failed", r[16], args=json.loads(r[14]),
                    error_args=json.loads(r[17]) if r[17] else {})


def address(value: str, what: str = "address") -> str:
    if not is_address(value):
        raise ConfigError(f"{value!r} is not an {what} (0x + 40 hex digits)")
    return str(to_checksum_address(value))


def record_hex(value: bytes | str) -> str:
    text = "0x" + value.hex() if isinstance(value, bytes) else value.lower()
    if not text.startswith("0x"):
        text = "0x" + text
    if len(text) != 66:
        raise ConfigError(f"{value!r} is not a record id (0x + 64 hex digits)")
    return text


def trail(
    db: sqlite3.Connection,
    *,
    patient: str | None = None,
    record: bytes | str | None = None,
    actor: str | None = None,
    member: str | None = None,
    names: Iterable[str] | None = None,
    since: int | None = None,
    until: int | None = None,
    include_failed: bool = True,
    limit: int | None = None,
) -> list[AuditRow]:
    """Events (and reverted transactions, where scanned) matching every filter given, oldest first.

    `patient`: facts about that patient's records and consent. `record`: one record version and the
    versions amending it. `actor`: what that account did (as the acting party or the sender).
    `member`: anything involving that account (actor, sender, or the one acted upon).
    """
    where: list[str] = []
    params: list[Any] = []
    if patient is not None:
        where.append("patient = ?")
        params.append(address(patient, "patient address"))
    if record is not None:
        where.append("(record_id = ? OR related_record = ?)")
        params += [record_hex(record)] * 2
    if actor is not None:
        where.append("(actor = ? OR sender = ?)")
        params += [address(actor)] * 2
    if member is not None:
        where.append("(actor = ? OR sender = ? OR subject = ?)")
        params += [address(member)] * 3
    if since is not None:
        where.append("timestamp >= ?")
        params.append(since)
    if until is not None:
        where.append("timestamp <= ?")
        params.append(until)
    clause = " AND ".join(where) or "1"
    name_list = list(names) if names is not None else None
    event_clause, tx_clause = clause, clause + " AND status = 0"
    event_params, tx_params = list(params), list(params)
    if name_list is not None:
        marks = ",".join("?" * len(name_list))
        event_clause += f" AND name IN ({marks})"
        tx_clause += f" AND function IN ({marks})"
        event_params += name_list
        tx_params += name_list
    rows = [_event_row(r) for r in db.execute(f"SELECT {_EVENT_COLUMNS} FROM events WHERE {event_clause}", event_params)]
    if include_failed:
        rows += [_tx_row(r) for r in db.execute(f"SELECT {_TX_COLUMNS} FROM transactions WHERE {tx_clause}", tx_params)]
    rows.sort(key=lambda row: row.position)
    return rows[:limit] if limit is not None else rows


def events_between(db: sqlite3.Connection, start: int, end: int) -> list[AuditRow]:
    rows = db.execute(
        f"SELECT {_EVENT_COLUMNS} FROM events WHERE block_number BETWEEN ? AND ? "
        "ORDER BY block_number, tx_index, log_index", (start, end))
    return [_event_row(r) for r in rows]


def transactions_between(db: sqlite3.Connection, start: int, end: int) -> list[AuditRow]:
    """Every transaction to a watched contract in the range, successful or not (where scanned)."""
    rows = db.execute(
        f"SELECT {_TX_COLUMNS} FROM transactions WHERE block_number BETWEEN ? AND ? ORDER BY block_number, tx_index",
        (start, end))
    return [_tx_row(r) for r in rows]


def suspended_at(db: sqlite3.Connection, account: str, position: Position) -> bool:
    """Whether the Consortium had `account` suspended just before `position`."""
    row = db.execute(
        "SELECT name FROM events WHERE contract = 'Consortium' AND subject = ? "
        "AND name IN ('MemberSuspended', 'MemberReinstated') AND (block_number, tx_index, log_index) < (?, ?, ?) "
        "ORDER BY block_number DESC, tx_index DESC, log_index DESC LIMIT 1", (account, *position)).fetchone()
    return row is not None and row[0] == "MemberSuspended"


def reads_in_window(db: sqlite3.Connection, reader: str, since: int, position: Position) -> int:
    """Reads of other people's records by `reader` from time `since` up to and including `position`."""
    row = db.execute(
        "SELECT COUNT(*) FROM events WHERE name = 'AccessRequested' AND contract = 'ConsentManager' AND actor = ? "
        "AND patient != actor AND timestamp >= ? AND (block_number, tx_index, log_index) <= (?, ?, ?)",
        (reader, since, *position)).fetchone()
    return int(row[0])


def revocation_before(
    db: sqlite3.Connection, patient: str, grantee: str, since: int, position: Position
) -> AuditRow | None:
    """The last revocation of `grantee` by `patient` at or after time `since` and before `position`,
    unless the patient granted access again after it."""
    rows = db.execute(
        f"SELECT {_EVENT_COLUMNS} FROM events WHERE contract = 'ConsentManager' AND patient = ? AND subject = ? "
        "AND name IN ('AccessRevoked', 'AccessGranted') AND (block_number, tx_index, log_index) < (?, ?, ?) "
        "ORDER BY block_number DESC, tx_index DESC, log_index DESC LIMIT 1", (patient, grantee, *position)).fetchall()
    if not rows:
        return None
    last = _event_row(rows[0])
    return last if last.name == "AccessRevoked" and last.timestamp >= since else None


def patient_of_record(db: sqlite3.Connection, record_id: str) -> str | None:
    row = db.execute("SELECT patient FROM events WHERE name = 'RecordAdded' AND contract = 'RecordRegistry' "
                     "AND record_id = ? LIMIT 1", (record_id,)).fetchone()
    return None if row is None else str(row[0])


def grant_history(db: sqlite3.Connection, patient: str | None = None) -> list[AuditRow]:
    """Every AccessGranted and AccessRevoked (of one patient, or all), oldest first."""
    where = "contract = 'ConsentManager' AND name IN ('AccessGranted', 'AccessRevoked')"
    params: tuple[Any, ...] = ()
    if patient is not None:
        where += " AND patient = ?"
        params = (address(patient, "patient address"),)
    rows = db.execute(f"SELECT {_EVENT_COLUMNS} FROM events WHERE {where} ORDER BY block_number, tx_index, log_index",
                      params)
    return [_event_row(r) for r in rows]
