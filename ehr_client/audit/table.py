"""Terminal rendering of audit rows and alerts (rich tables); addresses can carry local labels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.table import Table

from ehr_client.audit.facts import iso
from ehr_client.audit.queries import AuditRow
from ehr_client.audit.rules import Alert


def _short(value: str | None, *, keep: int = 6) -> str:
    if not value:
        return "-"
    return value if len(value) <= 2 * keep + 3 else f"{value[:keep + 2]}…{value[-4:]}"


def audit_rows_table(rows: Sequence[AuditRow], *, names: Mapping[str, str] | None = None,
                     title: str | None = None) -> Table:
    """when | who | what | tx, narrow enough for an 80-column terminal; reverted attempts marked."""
    labels = dict(names or {})

    def who(address: str | None) -> str:
        return labels.get(address, _short(address)) if address else "-"

    def what(row: AuditRow) -> str:
        text = row.detail
        for address, label in labels.items():
            text = text.replace(address, label)
        if row.record_id and row.record_id not in text:
            text += f" {_short(row.record_id)}"
        return text + (f" -> REVERTED ({row.error or 'no reason'})" if row.failed else "")

    table = Table("when (UTC)", "who", "what", "tx", title=title)
    for row in rows:
        table.add_row(iso(row.timestamp).replace("T", " ").rstrip("Z"), who(row.actor or row.sender), what(row),
                      _short(row.tx_hash))
    return table


def alerts_table(alerts: Sequence[Alert], *, title: str | None = None) -> Table:
    table = Table("when (UTC)", "severity", "rule", "message", "tx", title=title)
    for alert in alerts:
        table.add_row(iso(alert.timestamp), alert.severity, alert.rule, alert.message, _short(alert.tx_hash))
    return table
