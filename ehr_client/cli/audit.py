"""`ehr audit`: who did what to a patient's records, and when (every fact is an on-chain event)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

import typer
from rich.table import Table

from ehr_client.cli import _parse
from ehr_client.cli._context import app_context
from ehr_client.cli._output import JsonFlag, err, hexid, out, print_json, short, when
from ehr_client.client import AuditEntry


_UNTIL = re.compile(r"until (\d{9,})")


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "timestamp": entry.timestamp,
        "blockNumber": entry.block_number,
        "logIndex": entry.log_index,
        "txHash": entry.tx_hash,
        "event": entry.event,
        "actor": entry.actor,
        "recordId": hexid(entry.record_id),
        "detail": entry.detail,
    }


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


def audit(
    ctx: typer.Context,
    patient: Annotated[str | None, typer.Argument(help="Patient address or wallet name; default: --wallet.")] = None,
    json_: JsonFlag = False,
) -> None:
    """Show a patient's audit trail: registrations, writes, grants, revocations, reads, break-glass."""
    app_ = app_context(ctx)
    address = _parse.address(app_, patient or app_.settings.wallet)
    entries = app_.reader().audit_trail(address)
    if json_:
        print_json([entry_json(e) for e in entries])
        return
    if not entries:
        err().print(f"nothing on chain about {address}")
        return
    names = {address: "patient", **app_.known_wallets()}
    out().print(audit_table(entries, names=names, title=f"audit trail of {address}"))
