"""The audit table the demo prints: who did what to a patient's records, when, in which transaction."""

from __future__ import annotations

import re
from collections.abc import Mapping

from rich.table import Table

from ehr_client.audit import AuditEntry
from ehr_client.text import short, when


_UNTIL = re.compile(r"until (\d{9,})")


def audit_table(entries: list[AuditEntry], *, names: Mapping[str, str] | None = None, title: str | None = None) -> Table:
    """A rich table of audit entries: who, what, when, tx. `names` labels known addresses."""
    labels = dict(names or {})

    def who(address: str) -> str:
        return labels.get(address, short(address))

    def what(entry: AuditEntry) -> str:
        detail = entry.detail
        for address, label in labels.items():
            detail = detail.replace(address, label)
        detail = _UNTIL.sub(lambda m: "until " + when(int(m.group(1))), detail)
        return detail + (f" {short(entry.record_id)}" if entry.record_id else "")

    table = Table("when", "who", "what", "tx", title=title)
    for e in entries:
        table.add_row(when(e.timestamp), who(e.actor), what(e), short(e.tx_hash))
    return table

