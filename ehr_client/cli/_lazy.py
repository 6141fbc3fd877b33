"""The root command group: subcommands imported on first use, global options accepted anywhere.

`ehr --help`, `ehr node status` or a usage error must not pay for importing web3, the client,
FastAPI or Umbral (about a second here), so each subcommand's module is imported only when that
subcommand runs. The root help lists them from :data:`COMMANDS` without importing them; a test
checks that each summary still matches its command's docstring.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from ehr_client.cli._errors import ErrorReportingGroup


@dataclass(frozen=True)
class Lazy:
    """A subcommand: `module:attr` is a typer.Typer (a group) or a command function."""

    target: str
    summary: str
    extra: tuple[tuple[str, str], ...] = ()  # (name, module:function) added to a group when it loads


COMMANDS: dict[str, Lazy] = {
    "doctor": Lazy("ehr_client.cli.doctor:doctor",
                   "Check the toolchain, node, deployment, store and keystore; say what to run to fix them."),
    "deploy": Lazy("ehr_client.cli.deploy:deploy",
                   "Deploy Consortium, KeyRegistry, RecordRegistry and ConsentManager from --wallet."),
    "grant": Lazy("ehr_client.cli.consent:grant",
                  "Grant access to your records in some scopes, directly or as a signed consent for a relayer."),
    "revoke": Lazy("ehr_client.cli.consent:revoke",
                   "Revoke a grantee's access to your records, directly or as a signed revocation for a relayer."),
    "share": Lazy("ehr_client.cli.consent:share",
                  "Seal your records' keys to a grantee whose grant is in force (after a relayed signed grant)."),
    "relay": Lazy("ehr_client.cli.consent:relay",
                  "Submit a patient's signed grant or revocation (you pay the gas; you cannot alter it)."),
    "monitor": Lazy("ehr_client.cli.audit_ext:monitor", "Follow new blocks and print alerts as JSON lines"),
    "keys": Lazy("ehr_client.cli.keys:app", "Create, import, list, rotate, revoke and publish keys."),
    "consortium": Lazy("ehr_client.cli.consortium:app",
                       "Consortium membership: propose, approve, execute, suspend, list members."),
    "patient": Lazy("ehr_client.cli.patient:app", "Patient registration."),
    "record": Lazy("ehr_client.cli.records:app", "Add, amend, read, list and verify records.",
                   extra=(("import", "ehr_client.cli.batch:import_records"),
                          ("rotate", "ehr_client.cli.custodian:rotate"),
                          ("erase", "ehr_client.cli.custodian:erase"),
                          ("validate", "ehr_client.cli.validate:validate"),
                          ("recover", "ehr_client.cli.recover:recover"))),
    "node": Lazy("ehr_client.cli.node:app", "Run a local chain (Anvil or geth) and Kubo in the background."),
    "network": Lazy("ehr_client.cli.network:app", "Run a local consortium chain: geth Clique validators on loopback."),
    "storage": Lazy("ehr_client.cli.storage:app",
                    "Check and repair records stored as fragments across several storage nodes."),
    "custodian": Lazy("ehr_client.cli.custodian:app",
                      "Key custodians: run one, or release keys through them (audited reads)."),
    "claim": Lazy("ehr_client.cli.claim:app",
                  "Prove facts about a record without revealing it (zero-knowledge claims)."),
    "audit": Lazy("ehr_client.cli.audit_ext:app", "Who did what to whose records, and when; FHIR export."),
    "portal": Lazy("ehr_client.cli.portal:portal",
                   "Serve the patient portal: the web app and an API for ciphertext, chain reads and relaying."),
}


def _resolve(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def load(name: str, spec: Lazy) -> Any:
    """Import a subcommand's module and build its click command (as `app.add_typer` would)."""
    obj = _resolve(spec.target)
    wrapper = typer.Typer(add_completion=False)
    if isinstance(obj, typer.Typer):
        registered = {info.name for info in obj.registered_commands}
        for sub, target in spec.extra:
            if sub not in registered:
                obj.command(sub)(_resolve(target))
        wrapper.add_typer(obj, name=name)
    else:
        wrapper.command(name)(obj)
        wrapper.callback()(lambda: None)  # keeps get_command from collapsing a one-command app
    return typer.main.get_command(wrapper).commands[name]  # type: ignore[attr-defined]


class RootGroup(ErrorReportingGroup):
    """`ehr`: lists :data:`COMMANDS` without importing them, and loads only the one that runs."""

    _listing = False

    def list_commands(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]
        eager = [name for name in super().list_commands(ctx) if name not in COMMANDS]
        return list(COMMANDS) + eager

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Any:  # type: ignore[override]
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        spec = COMMANDS[cmd_name]
        if self._listing:
            return TyperCommand(cmd_name, help=spec.summary)
        command = load(cmd_name, spec)
        self.commands[cmd_name] = command
        return command

    def format_help(self, ctx: typer.Context, formatter: Any) -> None:  # type: ignore[override]
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def shell_complete(self, ctx: typer.Context, incomplete: str) -> list[Any]:  # type: ignore[override]
        """Subcommand names for shell completion, from the summaries (nothing imported)."""
        self._listing = True
        try:
            return list(super().shell_complete(ctx, incomplete))
        finally:
            self._listing = False

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        return super().parse_args(ctx, hoist_global_options(self, ctx, args))


def _options(params: Sequence[Any]) -> dict[str, Any]:
    """Option name -> click option (typer vendors click, so this goes by duck type)."""
    found: dict[str, Any] = {}
    for param in params:
        if getattr(param, "param_type_name", None) == "option":
            for opt in (*param.opts, *param.secondary_opts):
                found[opt] = param
    return found


def _takes_value(option: Any) -> bool:
    return not option.is_flag and not option.count


def hoist_global_options(root: TyperGroup, ctx: typer.Context, args: list[str]) -> list[str]:
    """Move the root's options written after the subcommand (`ehr record get ID --wallet patient`)
    in front of it, where click expects them.

    Only options the subcommand does not define itself are moved, and a subcommand option's
    value is never taken for an option name (`--purpose --wallet` keeps `--wallet` as the value).
    Nothing after `--` moves.
    """
    globals_ = _options(root.params)
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "--":
        option = globals_.get(args[i].split("=", 1)[0])
        i += 2 if option is not None and _takes_value(option) and "=" not in args[i] else 1
    if i >= len(args) or args[i] == "--":
        return args
    command: Any = root
    j = i
    local: dict[str, Any] = {}
    while isinstance(command, TyperGroup) and j < len(args) and not args[j].startswith("-"):
        sub = command.get_command(ctx, args[j])  # walk down to the leaf command
        if sub is None:
            if command is root:
                return args  # an unknown command: let click say so
            break  # a group's own arguments (`ehr audit patient` means `ehr audit show patient`)
        command = sub
        j += 1
        local.update(_options(command.params))
    head, moved, kept = list(args[:i]), [], list(args[i:j])
    k = j
    while k < len(args):
        token = args[k]
        if token == "--":
            kept.extend(args[k:])
            break
        name = token.split("=", 1)[0] if token.startswith("--") else token
        if name in local:
            width = 2 if _takes_value(local[name]) and "=" not in token else 1
            kept.extend(args[k:k + width])
            k += width
            continue
        option = globals_.get(name)
        if option is not None and not (_takes_value(option) and "=" not in token and k + 1 == len(args)):
            width = 2 if _takes_value(option) and "=" not in token else 1
            moved.extend(args[k:k + width])
            k += width
            continue
        kept.append(token)
        k += 1
    return head + moved + kept
