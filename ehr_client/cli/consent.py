"""`ehr grant`, `ehr revoke`, `ehr relay`: consent, sent directly or signed (EIP-712) for a relayer."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated

import typer

from ehr_client.cli import _parse
from ehr_client.cli._context import app_context
from ehr_client.cli._output import err, out, tx_line, when
from ehr_client.client import SignedConsent
from ehr_client.records import describe


class Access(str, enum.Enum):
    read = "read"
    amend = "amend"


SignOnly = Annotated[bool, typer.Option("--sign-only", help="Only sign (EIP-712) and print the consent for a relayer.")]
OutFile = Annotated[Path | None, typer.Option("--out", dir_okay=False, help="With --sign-only: write the JSON here.")]
Deadline = Annotated[str, typer.Option("--deadline", help="With --sign-only: how long the signature stays valid.")]


def _emit(signed: SignedConsent, out_file: Path | None) -> None:
    text = signed.to_json() + "\n"
    if out_file is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        out_file.write_text(text)
        err().print(f"wrote {out_file}")


def _share_hint(key_share: str | None, grantee: str) -> None:
    if key_share:
        out().print(f"key share for {grantee}: {key_share}")
        err().print(f"the grantee reads with `ehr record get RECORD --key-share {key_share}`")


def grant(
    ctx: typer.Context,
    grantee: Annotated[str, typer.Argument(help="Who gets access: address or local wallet name.")],
    scopes: Annotated[str, typer.Option("--scopes", help="Comma-separated categories (lab,conditions,…) or all.")],
    access: Annotated[Access, typer.Option("--access", help="read, or amend (write new versions).")] = Access.read,
    for_: Annotated[str, typer.Option("--for", help="How long the grant lasts (30m, 24h, 7d…).")] = "24h",
    until: Annotated[str | None, typer.Option("--until",
                                              help="Absolute expiry (ISO 8601 or unix time); overrides --for.")] = None,
    share_keys: Annotated[bool | None, typer.Option(
        "--share-keys/--no-share-keys", help="Seal existing records' keys to the grantee (default: for read).")] = None,
    sign_only: SignOnly = False,
    out_file: OutFile = None,
    deadline: Deadline = "24h",
) -> None:
    """Grant access to your records in some scopes, directly or as a signed consent for a relayer."""
    app_ = app_context(ctx)
    address = _parse.address(app_, grantee)
    bits = int(_parse.scopes(scopes))
    client = app_.client()
    now = client.chain.now()
    expires = _parse.timestamp(until) if until else now + _parse.duration(for_)
    if expires <= now:
        raise typer.BadParameter(f"the grant would already be expired ({when(expires)})", param_hint="--until")
    share = access is Access.read if share_keys is None else share_keys
    terms = f"{access.value} on {','.join(describe(bits))} to {address} until {when(expires)}"
    if sign_only:
        signed = client.sign_grant(address, bits, access=access.value, expires_at=expires,
                                   deadline=now + _parse.duration(deadline), share_keys=share)
        _emit(signed, out_file)
        err().print(f"signed grant: {terms}; anyone can submit it with `ehr relay FILE`")
        return
    result = client.grant(address, bits, access=access.value, expires_at=expires, share_keys=share)
    out().print(f"granted {terms}")
    out().print(f"  {tx_line(result.tx)}")
    _share_hint(result.key_share, address)


def revoke(
    ctx: typer.Context,
    grantee: Annotated[str, typer.Argument(help="Whose access ends: address or local wallet name.")],
    sign_only: SignOnly = False,
    out_file: OutFile = None,
    deadline: Deadline = "24h",
) -> None:
    """Revoke a grantee's access to your records, directly or as a signed revocation for a relayer."""
    app_ = app_context(ctx)
    address = _parse.address(app_, grantee)
    client = app_.client()
    if sign_only:
        signed = client.sign_revoke(address, deadline=client.chain.now() + _parse.duration(deadline))
        _emit(signed, out_file)
        err().print(f"signed revocation of {address}; anyone can submit it with `ehr relay FILE`")
        return
    out().print(f"revoked the access of {address} ({tx_line(client.revoke(address))})")


def relay(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="Signed consent JSON from `--sign-only` ('-' for stdin).")],
) -> None:
    """Submit a patient's signed grant or revocation (you pay the gas; you cannot alter it)."""
    text = sys.stdin.read() if file == "-" else Path(file).read_text()
    signed = SignedConsent.from_json(text)
    client = app_context(ctx).client()
    message = signed.typed_data.get("message", {})
    kind = signed.typed_data.get("primaryType")
    if kind == "Revoke":
        tx = client.relay_revoke(signed)
        out().print(f"relayed the revocation by {message.get('patient')} of {message.get('grantee')} ({tx_line(tx)})")
        return
    tx = client.relay_grant(signed)
    out().print(f"relayed the grant by {message.get('patient')} to {message.get('grantee')} ({tx_line(tx)})")
    _share_hint(signed.key_share, str(message.get("grantee")))
