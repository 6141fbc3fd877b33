"""`ehr record recover`: anchor again what this wallet acknowledged and the chain lost."""

from __future__ import annotations

import typer

from ehr_client.batch.recover import recover as recover_writes
from ehr_client.cli._context import app_context
from ehr_client.cli._output import JsonFlag, err, hexid, out, print_json, tx_line

__all__ = ["recover"]


def recover(ctx: typer.Context, json_: JsonFlag = False) -> None:
    """Check every write this wallet acknowledged against the chain; re-anchor what it lost (same ids)."""
    app_ = app_context(ctx)
    results = recover_writes(app_.client())
    if json_:
        print_json([{"kind": r.kind, "id": hexid(r.ident), "outcome": r.outcome, "detail": r.detail or None,
                     "txHash": r.tx.tx_hash if r.tx else None} for r in results])
    else:
        for r in results:
            line = f"{r.kind} {hexid(r.ident)}: {r.outcome}"
            out().print(line + (f" ({tx_line(r.tx)})" if r.tx else "") + (f" - {r.detail}" if r.detail else ""))
        if not results:
            err().print("nothing acknowledged by this wallet in this home")
    lost = [r for r in results if r.outcome in ("blob missing", "refused")]
    if lost:
        raise typer.Exit(4)
