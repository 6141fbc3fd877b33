"""Alert rules over the audit index. Each rule looks at one row (an event, or a transaction to the
contracts) with the index as context, and says whether it raises an alert.

Alert ids are derived from (rule, transaction hash, log index), so evaluating the same blocks twice
yields the same ids: the monitor deduplicates on them across restarts, and so can any receiver.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ehr_client.audit import queries
from ehr_client.audit.config import MonitorConfig
from ehr_client.audit.facts import iso
from ehr_client.audit.queries import AuditRow

WORKING_HOURS, READ_BURST, BREAK_GLASS = "working_hours", "read_burst", "break_glass"
READ_AFTER_REVOKE, SUSPENDED_ACTIVITY, FAILED_ATTEMPT = "read_after_revoke", "suspended_activity", "failed_attempt"
RULES = (WORKING_HOURS, READ_BURST, BREAK_GLASS, READ_AFTER_REVOKE, SUSPENDED_ACTIVITY, FAILED_ATTEMPT)
_READ_CALLS = ("requestAccess", "requestBatchedAccess")


@dataclass(frozen=True)
class Alert:
    """One alert about one on-chain fact. Carries addresses, ids and times only, never record contents."""

    id: str
    rule: str
    severity: str
    message: str
    block_number: int
    timestamp: int
    tx_hash: str
    log_index: int | None
    actor: str | None
    patient: str | None
    record_id: str | None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "rule": self.rule, "severity": self.severity, "message": self.message,
            "time": iso(self.timestamp), "timestamp": self.timestamp, "blockNumber": self.block_number,
            "txHash": self.tx_hash, "logIndex": self.log_index, "actor": self.actor, "patient": self.patient,
            "recordId": self.record_id, "details": self.details,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Alert:
        return cls(data["id"], data["rule"], data["severity"], data["message"], data["blockNumber"],
                   data["timestamp"], data["txHash"], data["logIndex"], data["actor"], data["patient"],
                   data["recordId"], dict(data.get("details") or {}))

    def summary(self) -> str:
        """One line for a terminal: time, severity, rule, message, transaction."""
        return f"{iso(self.timestamp)} [{self.severity}] {self.rule}: {self.message} (tx {self.tx_hash})"


def alert_id(rule: str, tx_hash: str, log_index: int | None) -> str:
    digest = hashlib.sha256(f"{rule}|{tx_hash.lower()}|{-1 if log_index is None else log_index}".encode())
    return f"{rule}-{digest.hexdigest()[:24]}"


def _alert(rule: str, severity: str, row: AuditRow, message: str, **details: Any) -> Alert:
    log_index = None if row.log_index < 0 else row.log_index
    return Alert(alert_id(rule, row.tx_hash, log_index), rule, severity, message, row.block_number, row.timestamp,
                 row.tx_hash, log_index, row.actor or row.sender, row.patient, row.record_id,
                 {"event" if row.kind == "event" else "function": row.name, **details})


Check = Callable[[AuditRow, sqlite3.Connection], Alert | None]


def _working_hours(config: MonitorConfig) -> Check | None:
    hours = config.working_hours
    if not hours.enabled:
        return None
    zone, start, end, days = hours.zone, hours.start_time, hours.end_time, hours.weekdays
    watched = set(hours.events)

    def check(row: AuditRow, db: sqlite3.Connection) -> Alert | None:
        if row.kind != "event" or row.name not in watched:
            return None
        if not hours.include_patients and row.actor is not None and row.actor == row.patient:
            return None
        local = datetime.fromtimestamp(row.timestamp, zone)
        clock = local.time().replace(tzinfo=None)
        inside = start <= clock < end if start <= end else (clock >= start or clock < end)
        if inside and local.weekday() in days:
            return None
        when = local.strftime("%a %H:%M %Z")
        return _alert(WORKING_HOURS, "low", row, f"{row.actor} {row.detail} at {when}, outside working hours "
                      f"({hours.start}-{hours.end} {hours.timezone}, {','.join(hours.days)})", localTime=local.isoformat())

    return check


def _read_burst(config: MonitorConfig) -> Check | None:
    burst = config.read_burst
    if not burst.enabled:
        return None

    def check(row: AuditRow, db: sqlite3.Connection) -> Alert | None:
        if row.kind != "event" or row.name != "AccessRequested" or row.actor is None or row.actor == row.patient:
            return None
        count = queries.reads_in_window(db, row.actor, row.timestamp - burst.window_seconds, row.position)
        if count != burst.max_reads + 1:  # fire once, when the limit is first exceeded
            return None
        return _alert(READ_BURST, "medium", row, f"{row.actor} read {count} records in {burst.window_seconds}s "
                      f"(limit {burst.max_reads})", reads=count, windowSeconds=burst.window_seconds)

    return check


def _break_glass(config: MonitorConfig) -> Check | None:
    rule = config.break_glass
    if not rule.enabled:
        return None

    def check(row: AuditRow, db: sqlite3.Connection) -> Alert | None:
        if row.kind != "event" or row.contract != "ConsentManager":
            return None
        if row.name in ("BreakGlassRequested", "BreakGlassActivated"):
            return _alert(BREAK_GLASS, "high", row, f"{row.actor} {row.detail} for patient {row.patient}",
                          reason=row.args.get("reason"))
        if rule.include_reads and row.name == "AccessRequested" and row.args.get("emergency"):
            return _alert(BREAK_GLASS, "high", row, f"{row.actor} opened record {row.record_id} of patient "
                          f"{row.patient} under break-glass")
        return None

    return check


def _read_after_revoke(config: MonitorConfig) -> Check | None:
    rule = config.read_after_revoke
    if not rule.enabled:
        return None

    def check(row: AuditRow, db: sqlite3.Connection) -> Alert | None:
        if row.kind == "event" and row.name == "AccessRequested":
            reader, attempt = row.actor, "read"
        elif row.kind == "transaction" and row.failed and row.name in _READ_CALLS:
            reader, attempt = row.sender, "attempted read (reverted)"
        else:
            return None
        if reader is None or row.patient is None or reader == row.patient:
            return None
        revoked = queries.revocation_before(db, row.patient, reader, row.timestamp - rule.within_seconds, row.position)
        if revoked is None:
            return None
        gap = row.timestamp - revoked.timestamp
        return _alert(READ_AFTER_REVOKE, "high", row, f"{reader}: {attempt} of patient {row.patient}'s record "
                      f"{gap}s after the patient revoked their access", revokedInTx=revoked.tx_hash,
                      secondsAfterRevocation=gap)

    return check


def _suspended_activity(config: MonitorConfig) -> Check | None:
    if not config.suspended_activity.enabled:
        return None

    def check(row: AuditRow, db: sqlite3.Connection) -> Alert | None:
        if row.kind != "transaction" or row.sender is None:
            return None
        if not queries.suspended_at(db, row.sender, row.position):
            return None
        outcome = "reverted" if row.failed else "succeeded"
        return _alert(SUSPENDED_ACTIVITY, "high", row, f"suspended member {row.sender} called {row.contract}."
                      f"{row.name} ({outcome})", outcome=outcome)

    return check


def _failed_attempt(config: MonitorConfig) -> Check | None:
    if not config.failed_attempts.enabled:
        return None

    def check(row: AuditRow, db: sqlite3.Connection) -> Alert | None:
        if row.kind != "transaction" or not row.failed:
            return None
        reason = row.error or "no reason given"
        return _alert(FAILED_ATTEMPT, "medium", row, f"{row.sender} called {row.contract}.{row.name} and it "
                      f"reverted: {reason}", error=row.error, errorArgs=row.error_args)

    return check


def build_checks(config: MonitorConfig) -> list[Check]:
    """The enabled rules, in a fixed order (the order alerts of one row come out in)."""
    makers = (_failed_attempt, _suspended_activity, _break_glass, _read_after_revoke, _read_burst, _working_hours)
    return [check for check in (make(config) for make in makers) if check is not None]


_SEVERITY = {"low": 0, "medium": 1, "high": 2}


def most_severe(alerts: Iterable[Alert]) -> Alert | None:
    """The first alert of the highest severity (what a demo or a summary shows), or None."""
    best: Alert | None = None
    for alert in alerts:
        if best is None or _SEVERITY[alert.severity] > _SEVERITY[best.severity]:
            best = alert
    return best


def evaluate(db: sqlite3.Connection, rows: Iterable[AuditRow], config: MonitorConfig) -> list[Alert]:
    """Alerts for `rows` (in chain order), with the index `db` as history."""
    checks = build_checks(config)
    alerts = []
    for row in sorted(rows, key=lambda r: r.position):
        for check in checks:
            alert = check(row, db)
            if alert is not None:
                alerts.append(alert)
    return alerts


def evaluate_blocks(db: sqlite3.Connection, start: int, end: int, config: MonitorConfig) -> list[Alert]:
    """Alerts for every event and scanned transaction in blocks start..end."""
    rows = queries.events_between(db, start, end) + queries.transactions_between(db, start, end)
    return evaluate(db, rows, config)
