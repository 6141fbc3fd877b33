"""`ehr audit` (a trail by patient, record or member, from a local index; FHIR export) and
`ehr monitor` (live alerts as JSON lines, optionally posted to a webhook).

Registration in ehr_client/cli/__init__.py (replacing `app.command("audit")(audit.audit)`)::

    app.add_typer(audit_ext.app, name="audit")
    app.command("monitor")(audit_ext.monitor)

`ehr audit [PATIENT]` keeps working: anything that is not a subcommand name runs `show`.
The index lives in <home>/audit/<network>/ and is brought up to date on every call.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from ehr_client.audit import (
    AuditIndex,
    Monitor,
    MonitorConfig,
    alerts_table,
    audit_rows_table,
    export_bundle,
    load_config,
)
from ehr_client.cli import _parse
from ehr_client.cli._context import AppContext, app_context
from ehr_client.cli._output import err, out, print_json


class _ShowByDefault(TyperGroup):
    """`ehr audit ARGS` means `ehr audit show ARGS` unless ARGS start with a subcommand or --help."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer's vendored click.Context
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = ["show", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_ShowByDefault, help="Who did what to whose records, and when; FHIR export.")

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
PatientArg = Annotated[str | None, typer.Argument(
    help="Patient address or wallet name; default: --wallet (unless --record/--actor/--member is given).")]
RecordOpt = Annotated[str | None, typer.Option("--record", help="One record version (0x + 64 hex) and its amendments.")]
ActorOpt = Annotated[str | None, typer.Option("--actor", help="What this account did (address or wallet name).")]
MemberOpt = Annotated[str | None, typer.Option("--member", help="Anything involving this account, as actor or target.")]
SinceOpt = Annotated[str | None, typer.Option("--since", help="From this time (ISO 8601 or unix seconds).")]
UntilOpt = Annotated[str | None, typer.Option("--until", help="Up to this time (ISO 8601 or unix seconds).")]
FailuresFlag = Annotated[bool, typer.Option(
    "--failures", help="Also scan blocks for reverted transactions (slower on a long chain; resumable).")]


def audit_state_dir(app_: AppContext) -> Path:
    return app_.settings.home_dir / "audit" / app_.settings.network.replace(":", "-")


def _filters(app_: AppContext, patient: str | None, record: str | None, actor: str | None, member: str | None,
             since: str | None, until: str | None) -> dict[str, Any]:
    filters: dict[str, Any] = {}
    if record is not None:
        filters["record"] = _parse.record_id(record)
    if actor is not None:
        filters["actor"] = _parse.address(app_, actor)
    if member is not None:
        filters["member"] = _parse.address(app_, member)
    if patient is not None or not filters:
        filters["patient"] = _parse.address(app_, patient or app_.settings.wallet)
    if since is not None:
        filters["since"] = _parse.timestamp(since)
    if until is not None:
        filters["until"] = _parse.timestamp(until)
    return filters


def _synced_index(app_: AppContext, *, failures: bool) -> AuditIndex:
    chain = app_.chain()
    index = AuditIndex.open(chain, audit_state_dir(app_))
    index.sync(transactions_from=chain.deployment.deploy_block if failures else None)
    return index


def _describe(filters: dict[str, Any]) -> str:
    parts = [f"{key} {('0x' + value.hex()) if isinstance(value, bytes) else value}"
             for key, value in filters.items() if key in ("patient", "record", "actor", "member")]
    return ", ".join(parts)


@app.command("show")
def show(
    ctx: typer.Context,
    patient: PatientArg = None,
    record: RecordOpt = None,
    actor: ActorOpt = None,
    member: MemberOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    failures: FailuresFlag = False,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most this many rows (oldest first).")] = None,
    json_: JsonFlag = False,
) -> None:
    """Show the audit trail: writes, grants, revocations, reads, break-glass, membership, keys."""
    app_ = app_context(ctx)
    filters = _filters(app_, patient, record, actor, member, since, until)
    with _synced_index(app_, failures=failures) as index:
        rows = index.trail(limit=limit, **filters)
    if json_:
        print_json([row.to_json() for row in rows])
        return
    if not rows:
        err().print(f"nothing on chain for {_describe(filters)}")
        return
    labels = {filters["patient"]: "patient", **app_.known_wallets()} if "patient" in filters else app_.known_wallets()
    out().print(audit_rows_table(rows, names=labels, title=f"audit trail: {_describe(filters)}"))


@app.command("export")
def export(
    ctx: typer.Context,
    patient: PatientArg = None,
    record: RecordOpt = None,
    actor: ActorOpt = None,
    member: MemberOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    fhir: Annotated[bool, typer.Option("--fhir", help="A FHIR R4 Bundle (the export format; always on).")] = True,
    audit_events: Annotated[bool, typer.Option("--audit-events/--no-audit-events",
                                               help="AuditEvent resources for every fact.")] = True,
    consents: Annotated[bool, typer.Option("--consents/--no-consents", help="Consent resources for grants.")] = True,
    failures: FailuresFlag = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", dir_okay=False,
                                                help="Write the Bundle here instead of stdout.")] = None,
) -> None:
    """Export the trail as a FHIR R4 Bundle of AuditEvent and Consent resources (no health data)."""
    app_ = app_context(ctx)
    filters = _filters(app_, patient, record, actor, member, since, until)
    with _synced_index(app_, failures=failures) as index:
        document = export_bundle(index, audit_events=audit_events, consents=consents, **filters)
    text = json.dumps(document, indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    output.write_text(text)
    err().print(f"wrote {len(document['entry'])} FHIR resources to {output}")


def _from_block(text: str | None) -> int | str | None:
    if text is None or text == "deploy":
        return None
    if text == "latest":
        return "latest"
    if text.isdigit():
        return int(text)
    raise typer.BadParameter(f"{text!r} is not a block number, 'latest' or 'deploy'", param_hint="--from-block")


def monitor(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option("--config", "-c", exists=True, dir_okay=False,
                                                help="Rules, webhook and polling (TOML or JSON).")] = None,
    webhook: Annotated[str | None, typer.Option("--webhook", envvar="EHR_ALERT_WEBHOOK",
                                                help="POST every alert (JSON) to this URL.")] = None,
    from_block: Annotated[str | None, typer.Option(
        "--from-block", help="First run only: a block number, 'latest' (new blocks only) or 'deploy' (default: "
                             "the whole history). Later runs resume where the last one stopped.")] = None,
    state_dir: Annotated[Path | None, typer.Option("--state-dir", file_okay=False,
                                                   help="Monitor state and index. Default: <home>/monitor/<network>.")] = None,
    once: Annotated[bool, typer.Option("--once", help="Process up to the current head, then exit.")] = False,
    table: Annotated[bool, typer.Option("--table", help="With --once: a table instead of JSON lines.")] = False,
) -> None:
    """Follow new blocks and print alerts as JSON lines (break-glass, reads after revocation, bursts,
    off-hours access, suspended members, reverted attempts). Survives node restarts; Ctrl-C stops."""
    app_ = app_context(ctx)
    settings = load_config(config) if config is not None else MonitorConfig()
    settings = settings.with_webhook(webhook)
    deployment = app_.deployment()
    deployment.check_client_compatible()
    directory = state_dir or app_.settings.home_dir / "monitor" / app_.settings.network.replace(":", "-")
    audit_log = logging.getLogger("ehr_client.audit")
    if not audit_log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("monitor: %(message)s"))
        audit_log.addHandler(handler)
        audit_log.setLevel(logging.WARNING)
    collected: list[Any] = []
    emit = collected.append if once and table else None
    options: dict[str, Any] = {"state_dir": directory, "config": settings, "from_block": _from_block(from_block)}
    if emit is not None:
        options["emit"] = emit
    with Monitor.for_rpc(app_.rpc_url, deployment, **options) as watcher:
        if once:
            watcher.alerts()  # opens the state, so the run's first block is known
            assert watcher.state is not None
            before = watcher.state.get_int("last_block")
            printed = watcher.catch_up()
            last = watcher.state.get_int("last_block")
            first = watcher.state.get_int("first_block") if before is None else before + 1
            if table:
                out().print(alerts_table(collected, title="alerts"))
            if not printed:
                span = f"blocks {first}-{last}" if first is not None and last is not None and first <= last else \
                    f"new blocks (processed up to block {last})"
                err().print(f"no alerts in {span}")
            return
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = signal.signal(signal.SIGTERM, on_signal)
        err().print(f"monitoring {app_.settings.network} at {app_.rpc_url}; state in {directory}; Ctrl-C stops")
        try:
            watcher.run(stop=stop)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
