"""`ehr grant`, `ehr revoke`, `ehr relay`: consent, sent directly or signed (EIP-712) for a relayer.

A patient can sign with the local wallet (`--sign-only`), or print the typed data exactly as
`eth_signTypedData_v4` takes it (`--print-typed-data`), sign it in any wallet, and hand the
signature to whoever relays (`ehr relay FILE --signature 0x…`). `ehr relay` checks the document
was made for this deployment and by the patient before it pays gas; a refusal exits 3, a consent
already in force says "already relayed" and exits 0.
"""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ehr_client.chain.client import TxResult
from ehr_client.chain.eip712 import GrantMessage
from ehr_client.cli import _parse
from ehr_client.cli._context import app_context
from ehr_client.cli._output import JsonFlag, err, out, print_json, tx_line, when
from ehr_client.client import SignedConsent
from ehr_client.errors import AlreadyRelayed
from ehr_client.records import describe
from ehr_client.records.purpose import DEFAULT_PURPOSE, PURPOSES, parse_purpose
from ehr_client.storage import Cid


class Access(str, enum.Enum):
    read = "read"
    amend = "amend"


SignOnly = Annotated[bool, typer.Option("--sign-only", help="Only sign (EIP-712) and print the consent for a relayer.")]
PrintTypedData = Annotated[bool, typer.Option(
    "--print-typed-data", help="Print the EIP-712 typed data to sign in any wallet (eth_signTypedData_v4), unsigned.")]
OutFile = Annotated[Path | None, typer.Option("--out", "-o", dir_okay=False,
                                              help="With --sign-only or --print-typed-data: write the JSON here.")]
Deadline = Annotated[str, typer.Option("--deadline",
                                       help="Signed consent: how long a relayer may submit the signature.")]


def _emit(text: str, out_file: Path | None) -> None:
    if out_file is None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    else:
        out_file.write_text(text + "\n")
        err().print(f"wrote {out_file}")


def _tx_json(tx: TxResult | None) -> dict[str, Any] | None:
    return None if tx is None else {"hash": tx.tx_hash, "block": tx.block_number, "gasUsed": tx.gas_used}


def _share_hint(key_share: str | None, grantee: str) -> None:
    if key_share:
        out().print(f"key share for {grantee}: {key_share}")
        err().print(f"the grantee reads with `ehr record get RECORD --key-share {key_share}`")


def _after_relay(share: bool, grantee: str, scopes: str) -> str:
    return (f"; once it is relayed, share the keys: `ehr share {grantee} --scopes {scopes}` (nothing is sealed to "
            "the grantee before the grant is in force)") if share else ""


def share(
    ctx: typer.Context,
    grantee: Annotated[str, typer.Argument(help="Who gets the keys: address or local wallet name.")],
    scopes: Annotated[str, typer.Option("--scopes", help="Comma-separated categories (lab,conditions,…) or all.")],
    json_: JsonFlag = False,
) -> None:
    """Seal your records' keys to a grantee whose grant is in force (after a relayed signed grant)."""
    app_ = app_context(ctx)
    address = _parse.address(app_, grantee)
    bits = int(_parse.scopes(scopes))
    client = app_.client()
    key_share, shared = client.share_keys(address, bits)
    if json_:
        print_json({"grantee": address, "scopes": describe(bits), "keyShare": key_share, "sharedRecords": shared})
        return
    if key_share is None:
        out().print(f"no keys shared with {address}: no record in {','.join(describe(bits))} is under a grant in "
                    "force for them (relay the grant first), or there is none")
        return
    out().print(f"shared the keys of {shared} record(s) with {address}")
    _share_hint(key_share, address)


def grant(
    ctx: typer.Context,
    grantee: Annotated[str, typer.Argument(help="Who gets access: address or local wallet name.")],
    scopes: Annotated[str, typer.Option("--scopes", help="Comma-separated categories (lab,conditions,…) or all.")],
    access: Annotated[Access, typer.Option("--access", help="read, or amend (write new versions).")] = Access.read,
    purpose: Annotated[str, typer.Option(
        "--purpose", help=f"Why (FHIR purpose of use): {', '.join(PURPOSES)}.")] = DEFAULT_PURPOSE,
    for_: Annotated[str, typer.Option("--for", help="How long the grant lasts (30m, 24h, 7d…).")] = "24h",
    until: Annotated[str | None, typer.Option("--until",
                                              help="Absolute expiry (ISO 8601 or unix time); overrides --for.")] = None,
    share_keys: Annotated[bool | None, typer.Option(
        "--share-keys/--no-share-keys", help="Seal existing records' keys to the grantee (default: for read).")] = None,
    sign_only: SignOnly = False,
    print_typed_data: PrintTypedData = False,
    out_file: OutFile = None,
    deadline: Deadline = "24h",
    json_: JsonFlag = False,
) -> None:
    """Grant access to your records in some scopes, directly or as a signed consent for a relayer."""
    app_ = app_context(ctx)
    address = _parse.address(app_, grantee)
    bits = int(_parse.scopes(scopes))
    why = parse_purpose(purpose).word
    lasts = None if until else _parse.duration(for_)
    signature_lasts = _parse.duration(deadline) if print_typed_data or sign_only else 0
    now = app_.chain().now()  # the input is checked against the chain's clock before any key is unlocked
    expires = _parse.timestamp(until) if until else now + (lasts or 0)
    if expires <= now:
        raise typer.BadParameter(f"the grant would already be expired ({when(expires)})", param_hint="--until")
    client = app_.client()
    share = access is Access.read if share_keys is None else share_keys
    terms = f"{access.value} on {','.join(describe(bits))} to {address} for {why} until {when(expires)}"
    if print_typed_data or sign_only:
        valid_until = now + signature_lasts
        if print_typed_data:
            typed = client.grant_document(address, bits, access=access.value, purpose=why, expires_at=expires,
                                          deadline=valid_until)
            _emit(json.dumps(typed, indent=2), out_file)
            err().print(f"typed data for: {terms}; sign it with eth_signTypedData_v4, then "
                        "`ehr relay FILE --signature 0x…`" + _after_relay(share, address, scopes))
            return
        signed = client.sign_grant(address, bits, access=access.value, purpose=why, expires_at=expires,
                                   deadline=valid_until, share_keys=share)
        _emit(signed.to_json(), out_file)
        err().print(f"signed grant: {terms}; anyone can submit it with `ehr relay FILE`" + _after_relay(share, address,
                                                                                                    scopes))
        return
    result = client.grant(address, bits, access=access.value, purpose=why, expires_at=expires, share_keys=share)
    if json_:
        print_json({"granted": {"grantee": address, "scopes": describe(bits), "access": access.value, "purpose": why,
                                "expiresAt": expires}, "tx": _tx_json(result.tx), "keyShare": result.key_share,
                    "sharedRecords": result.shared_records})
        return
    out().print(f"granted {terms}")
    out().print(f"  {tx_line(result.tx)}")
    _share_hint(result.key_share, address)


def revoke(
    ctx: typer.Context,
    grantee: Annotated[str, typer.Argument(help="Whose access ends: address or local wallet name.")],
    sign_only: SignOnly = False,
    print_typed_data: PrintTypedData = False,
    out_file: OutFile = None,
    deadline: Deadline = "24h",
    json_: JsonFlag = False,
) -> None:
    """Revoke a grantee's access to your records, directly or as a signed revocation for a relayer.

    A signed revocation ends any grant signed before it (at the same nonce or earlier), whichever
    a relayer submits first."""
    app_ = app_context(ctx)
    address = _parse.address(app_, grantee)
    client = app_.client()
    if print_typed_data or sign_only:
        valid_until = client.chain.now() + _parse.duration(deadline)
        if print_typed_data:
            _emit(json.dumps(client.revoke_document(address, deadline=valid_until), indent=2), out_file)
            err().print(f"typed data for revoking {address}; sign it, then `ehr relay FILE --signature 0x…`")
            return
        _emit(client.sign_revoke(address, deadline=valid_until).to_json(), out_file)
        err().print(f"signed revocation of {address}; anyone can submit it with `ehr relay FILE`")
        return
    tx = client.revoke(address)
    if json_:
        print_json({"revoked": {"grantee": address}, "tx": _tx_json(tx)})
        return
    out().print(f"revoked the access of {address} ({tx_line(tx)})")


def relay(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(
        help="Signed consent JSON from `--sign-only`, or typed data from `--print-typed-data` ('-' for stdin).")],
    signature: Annotated[str | None, typer.Option(
        "--signature", help="The wallet's signature over the typed data in FILE (0x…, 65 bytes).")] = None,
    key_share: Annotated[str | None, typer.Option(
        "--key-share", help="The key share CID the patient gave with the grant.")] = None,
    json_: JsonFlag = False,
) -> None:
    """Submit a patient's signed grant or revocation (you pay the gas; you cannot alter it).

    The consent must be for this deployment (domain name, version, chain, contract) and signed by
    its patient; otherwise nothing is sent and the command exits 3."""
    text = sys.stdin.read() if file == "-" else Path(file).read_text()
    signed = SignedConsent.from_json(text, signature=signature)
    if key_share is not None:
        signed = SignedConsent(signed.typed_data, signed.signature, Cid(key_share))
    client = app_context(ctx).client()
    message = signed.message
    kind = "grant" if isinstance(message, GrantMessage) else "revocation"
    try:
        tx: TxResult | None = client.relay_grant(signed) if kind == "grant" else client.relay_revoke(signed)
        note = None
    except AlreadyRelayed as exc:
        tx, note = None, str(exc)
    if json_:
        print_json({"relayed": kind, "patient": message.patient, "grantee": message.grantee, "nonce": message.nonce,
                    "alreadyRelayed": note is not None, "tx": _tx_json(tx),
                    "keyShare": signed.key_share if kind == "grant" else None})
        return
    what = f"the {kind} by {message.patient} {'to' if kind == 'grant' else 'of'} {message.grantee}"
    out().print(note if note is not None else f"relayed {what} ({tx_line(tx)})")
    if kind == "grant":
        _share_hint(signed.key_share, message.grantee)
