"""`ehr consortium`: governors admit, reinstate and suspend members through M-of-N proposals."""

from __future__ import annotations

import enum
from typing import Annotated

import typer
from rich.table import Table

from ehr_client.chain import governance as gov
from ehr_client.cli import _parse
from ehr_client.cli._context import app_context
from ehr_client.chain.client import TxResult
from ehr_client.cli._output import JsonFlag, err, out, print_json, tx_line, when

app = typer.Typer(help="Consortium membership: propose, approve, execute, suspend, list members.",
                  no_args_is_help=True)

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"



class Action(str, enum.Enum):
    admit = "admit"
    reinstate = "reinstate"
    add_governor = "add-governor"
    remove_governor = "remove-governor"
    set_threshold = "set-threshold"


class Role(str, enum.Enum):
    provider = "provider"
    insurer = "insurer"
    lab = "lab"
    auditor = "auditor"
    custodian = "custodian"
    validator = "validator"


def _maybe_execute(ctx: typer.Context, proposal_id: int, *, quiet: bool = False) -> TxResult | None:
    """Execute if the approvals suffice; the execution's tx, or None (said on stderr) if not yet."""
    app_ = app_context(ctx)
    chain = app_.chain()
    count, threshold = gov.approvals(chain, proposal_id)
    if count < threshold:
        err().print(f"proposal {proposal_id} has {count} of {threshold} approvals; other governors run "
                    f"`ehr consortium approve {proposal_id}`")
        return None
    tx = gov.execute(chain, app_.account(), proposal_id)
    if not quiet:
        out().print(f"executed proposal {proposal_id} ({tx_line(tx)})")
    return tx


def _tx_json(tx: TxResult | None) -> dict[str, object] | None:
    return None if tx is None else {"txHash": tx.tx_hash, "blockNumber": tx.block_number, "gasUsed": tx.gas_used}


@app.command("propose")
def propose(
    ctx: typer.Context,
    action: Annotated[Action, typer.Argument(help="What to do.")],
    target: Annotated[str | None, typer.Argument(help="Address or local wallet name (not for set-threshold).")] = None,
    role: Annotated[Role | None, typer.Option("--role", help="Role to admit with (admit only).")] = None,
    threshold: Annotated[int | None, typer.Option("--threshold", min=1, max=32,
                                                  help="New threshold (set-threshold only).")] = None,
    window: Annotated[str, typer.Option("--window", help="How long the proposal stays open (max 30d).")] = "7d",
    execute_now: Annotated[bool, typer.Option("--execute", help="Execute at once if the approvals suffice.")] = False,
    json_: JsonFlag = False,
) -> None:
    """Propose an admission, reinstatement, governor change or new threshold."""
    app_ = app_context(ctx)
    name = str(action.value)
    if name == "set-threshold":
        if threshold is None:
            raise typer.BadParameter("set-threshold needs --threshold N", param_hint="--threshold")
        address, value = ZERO_ADDRESS, threshold
    else:
        if target is None:
            raise typer.BadParameter(f"{name} needs a TARGET address", param_hint="TARGET")
        address = _parse.address(app_, target)
        if name == "admit":
            if role is None:
                raise typer.BadParameter("admit needs --role", param_hint="--role")
            value = gov.ROLES[str(role.value)]
        else:
            value = 0
    seconds = _parse.duration(window)
    proposed = gov.propose(app_.chain(), app_.account(), name, address, value, window=seconds)
    if json_:
        executed = _maybe_execute(ctx, proposed.proposal_id, quiet=True) if execute_now else None
        print_json({"proposalId": proposed.proposal_id, "action": name,
                    "target": None if name == "set-threshold" else address,
                    "role": role.value if role is not None and name == "admit" else None,
                    "threshold": threshold if name == "set-threshold" else None,
                    "expiresAt": proposed.expires_at, "tx": _tx_json(proposed.tx),
                    "executed": executed is not None, "executeTx": _tx_json(executed)})
        return
    out().print(f"proposal {proposed.proposal_id}: {name} {'' if name == 'set-threshold' else address}"
                f"{f' as {role.value}' if role is not None and name == 'admit' else ''}"
                f"{f' to {threshold}' if name == 'set-threshold' else ''}, open until {when(proposed.expires_at)}")
    out().print(f"  {tx_line(proposed.tx)}")
    if execute_now:
        _maybe_execute(ctx, proposed.proposal_id)


@app.command("approve")
def approve(
    ctx: typer.Context,
    proposal_id: Annotated[int, typer.Argument(min=0, help="Proposal id (from `propose`).")],
    execute_now: Annotated[bool, typer.Option("--execute", help="Execute at once if the approvals suffice.")] = False,
) -> None:
    """Approve a pending proposal as a governor."""
    app_ = app_context(ctx)
    tx = gov.approve(app_.chain(), app_.account(), proposal_id)
    count, threshold = gov.approvals(app_.chain(), proposal_id)
    out().print(f"approved proposal {proposal_id}: {count} of {threshold} approvals ({tx_line(tx)})")
    if execute_now:
        _maybe_execute(ctx, proposal_id)


@app.command("execute")
def execute(ctx: typer.Context, proposal_id: Annotated[int, typer.Argument(min=0)]) -> None:
    """Execute a proposal that has enough approvals."""
    app_ = app_context(ctx)
    tx = gov.execute(app_.chain(), app_.account(), proposal_id)
    out().print(f"executed proposal {proposal_id} ({tx_line(tx)})")


@app.command("suspend")
def suspend(ctx: typer.Context, member: Annotated[str, typer.Argument(help="Address or local wallet name.")]) -> None:
    """Suspend a member at once (any single governor); reinstating needs a proposal."""
    app_ = app_context(ctx)
    address = _parse.address(app_, member)
    chain = app_.chain()
    tx = chain.transact(app_.account(), chain.consortium.functions.suspend(address), action="suspend member")
    out().print(f"suspended {address} ({tx_line(tx)})")


@app.command("members")
def members(ctx: typer.Context, json_: JsonFlag = False) -> None:
    """List governors, the threshold and every member with role and status."""
    chain = app_context(ctx).chain()
    governors, threshold = gov.governance(chain)
    listed = gov.members(chain)
    if json_:
        print_json({
            "governors": governors,
            "threshold": threshold,
            "members": [{"address": m.address, "role": m.role, "suspended": m.suspended, "since": m.since}
                        for m in listed],
        })
        return
    out().print(f"governors ({threshold} of {len(governors)} must approve): {', '.join(governors)}")
    table = Table("member", "role", "status", "since")
    for m in listed:
        table.add_row(m.address, m.role, "[red]suspended[/]" if m.suspended else "active", when(m.since))
    out().print(table)
