"""`ehr patient`: register as a patient (and publish the encryption key writers seal records to)."""

from __future__ import annotations

from typing import Annotated

import typer

from ehr_client.cli import keys
from ehr_client.cli._context import app_context
from ehr_client.cli._output import out, tx_line

app = typer.Typer(help="Patient registration.", no_args_is_help=True)


@app.command("register")
def register(
    ctx: typer.Context,
    publish_key: Annotated[bool, typer.Option("--publish-key/--no-publish-key",
                                              help="Also publish the X25519 key if it is not current.")] = True,
) -> None:
    """Register --wallet as a patient on the RecordRegistry (idempotent)."""
    app_ = app_context(ctx)
    client = app_.client()
    chain = client.chain
    if chain.call(chain.records.functions.isPatient(client.address), action="check patient"):
        out().print(f"{client.address} is already a registered patient")
    else:
        out().print(f"registered {client.address} as a patient ({tx_line(client.register_patient())})")
    if publish_key:
        key = app_.keystore().info("x25519")
        version, tx = keys.publish(chain, client.identity.account, key)
        keys.report_publish(key, version, tx)
