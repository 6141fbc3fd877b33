"""`ehr custodian`: run a key custodian, or use custodians for audited key release.

    ehr custodian serve [--db F] [--port N]          a custodian (wallet admitted with role custodian)
    ehr custodian umbral-key                          create and publish your Umbral key (patients, grantees)
    ehr custodian enroll --custodian URL ...          a grantee's TOTP enrolment (URIs shown once)
    ehr custodian login --custodian URL ...           open MFA sessions with one-time codes
    ehr custodian share GRANTEE --scopes lab ...      grant on chain + deposit key fragments
    ehr custodian read RECORD                         audited read: access request, then m custodians
    ehr custodian report                              access requests and which custodians released

`rotate` and `erase` below are meant for `ehr record rotate|erase` (registered by the CLI).
Custodian URLs come from --custodian (repeatable) or EHR_CUSTODIANS (comma-separated).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ehr_client.sharing.audited import AuditedSharing
from ehr_client.cli import _parse
from ehr_client.cli._context import AppContext, app_context
from ehr_client.cli._output import JsonFlag, err, hexid, out, print_json, short, tx_line, when
from ehr_client.custodian.core import Custodian, CustodianSettings
from ehr_client.sharing.release import SessionBook
from ehr_client.sharing.remote import CustodianSet
from ehr_client.custodian.server import serve as run_server
from ehr_client.custodian.store import CustodianStore
from ehr_client.errors import ConfigError, KeyNotFound

app = typer.Typer(help="Key custodians: run one, or release keys through them (audited reads).",
                  no_args_is_help=True)

CUSTODIANS_ENV = "EHR_CUSTODIANS"
Custodians = Annotated[list[str] | None, typer.Option(
    "--custodian", help=f"Custodian URL; repeat for each (default: ${CUSTODIANS_ENV}, comma-separated).")]
Threshold = Annotated[int, typer.Option("--threshold", "-m", min=1, help="Fragments needed to open a key (m of n).")]


def custodian_urls(values: list[str] | None) -> list[str]:
    raw = values or [os.environ.get(CUSTODIANS_ENV, "")]
    urls = [u.strip() for value in raw for u in value.split(",") if u.strip()]
    if not urls:
        raise typer.BadParameter(f"name the custodians with --custodian URL or ${CUSTODIANS_ENV}",
                                 param_hint="--custodian")
    return urls


def sessions_path(app_: AppContext) -> Path:
    return app_.settings.home_dir / "sessions" / f"{app_.settings.wallet}.json"


def sharing(app_: AppContext, urls: list[str], threshold: int = 2) -> AuditedSharing:
    client = app_.client()
    return AuditedSharing(client, CustodianSet.connect(client.chain, urls), threshold=threshold,
                          sessions=SessionBook.load(sessions_path(app_)))


@app.command("serve")
def serve(
    ctx: typer.Context,
    db: Annotated[Path | None, typer.Option("--db", dir_okay=False,
                                            help="SQLite file (default: <home>/custodian/<wallet>.db).")] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port; 0 picks a free one.")] = 8700,
    ready_file: Annotated[Path | None, typer.Option("--ready-file", dir_okay=False,
                                                    help="Write {url, custodian, pid} here once serving.")] = None,
    poll_interval: Annotated[float, typer.Option("--poll-interval", min=0.1,
                                                 help="Seconds between checks for revocations and erasures.")] = 2.0,
    session_ttl: Annotated[int, typer.Option("--session-ttl", min=30, help="Seconds an MFA session lasts.")] = 900,
    max_request_age: Annotated[int, typer.Option("--max-request-age", min=1,
                                                 help="Oldest access request answered, in seconds.")] = 300,
    max_request_blocks: Annotated[int, typer.Option("--max-request-blocks", min=1,
                                                    help="Oldest access request answered, in blocks.")] = 256,
    session_attempts: Annotated[int, typer.Option("--session-attempts-per-minute", min=1,
                                                  help="Session attempts one grantee may make a minute.")] = 10,
    refusals: Annotated[int, typer.Option("--unsigned-refusals-per-minute", min=1,
                                          help="Refused unsigned requests one client address may send a minute "
                                               "before it gets 429 unread.")] = 120,
) -> None:
    """Run a key custodian: check the chain on every request, release re-encryption fragments."""
    app_ = app_context(ctx)
    path = (db or app_.settings.home_dir / "custodian" / f"{app_.settings.wallet}.db").expanduser()
    custodian = Custodian(app_.identity(), app_.chain(), CustodianStore(path),
                          settings=CustodianSettings(session_ttl=session_ttl, max_request_age=max_request_age,
                                                     max_request_blocks=max_request_blocks,
                                                     session_attempts_per_minute=session_attempts,
                                                     unauthenticated_refusals_per_minute=refusals))
    err().print(f"custodian database: {path}")
    run_server(custodian, host=host, port=port, poll_interval=poll_interval, ready_file=ready_file)


@app.command("umbral-key")
def umbral_key(ctx: typer.Context) -> None:
    """Create an Umbral key if --wallet has none, and publish it (needed to share or receive audited keys)."""
    app_ = app_context(ctx)
    keystore = app_.keystore()
    try:
        info = keystore.info("umbral")
    except KeyNotFound:
        info = keystore.generate_encryption_key("umbral", password=app_.password())
        out().print(f"created Umbral key v{info.version}: 0x{info.public_key.hex()}")
    version = app_.client().publish_umbral_key()
    out().print(f"Umbral key v{info.version} is published as on-chain version {version}")


@app.command("enroll")
def enroll(ctx: typer.Context, custodian: Custodians = None) -> None:
    """Enroll --wallet's second factor with each custodian; add each URI to an authenticator app."""
    uris = sharing(app_context(ctx), custodian_urls(custodian)).enroll()
    for address, uri in uris.items():
        out().print(f"{address}  {uri}")
    err().print("each URI is shown this once: add it to your authenticator app now, then `ehr custodian login`")


@app.command("login")
def login(ctx: typer.Context, custodian: Custodians = None, threshold: Threshold = 2) -> None:
    """Open an MFA session at each custodian (asks for each one's current one-time code)."""
    app_ = app_context(ctx)
    if not app_.stdin_is_terminal():
        raise ConfigError("login asks for one-time codes: run it in a terminal")
    side = sharing(app_, custodian_urls(custodian), threshold)
    opened = side.open_sessions(lambda address: str(typer.prompt(f"one-time code for custodian {short(address)}")))
    for address, session in opened.items():
        out().print(f"session with {address} until {when(session.expires_at)}")


@app.command("share")
def share(
    ctx: typer.Context,
    grantee: Annotated[str, typer.Argument(help="Who gets access: address or local wallet name.")],
    scopes: Annotated[str, typer.Option("--scopes", help="Comma-separated categories (lab,conditions,…) or all.")],
    for_: Annotated[str, typer.Option("--for", help="How long the grant lasts (30m, 24h, 7d…).")] = "24h",
    custodian: Custodians = None,
    threshold: Threshold = 2,
) -> None:
    """Grant read access on chain and deposit m-of-n key fragments with the custodians."""
    app_ = app_context(ctx)
    address = _parse.address(app_, grantee)  # every argument before the key is unlocked
    lasts, bits = _parse.duration(for_), int(_parse.scopes(scopes))
    side = sharing(app_, custodian_urls(custodian), threshold)
    expires = side.client.chain.now() + lasts
    result = side.grant(address, bits, expires_at=expires)
    out().print(f"granted read to {address} until {when(expires)} ({tx_line(result.tx)})")
    out().print(f"  {len(result.record_ids)} records, fragments at {len(result.custodians)} custodians, "
                f"any {result.threshold} open a key")
    if result.skipped:
        err().print(f"{len(result.skipped)} records have no Umbral capsule (written before `ehr custodian umbral-key`)")


@app.command("read")
def read(
    ctx: typer.Context,
    record: Annotated[str, typer.Argument(help="Record id (0x + 64 hex digits).")],
    out_file: Annotated[Path | None, typer.Option("--out", "-o", dir_okay=False, help="Write the record here.")] = None,
    custodian: Custodians = None,
) -> None:
    """Audited read: on-chain access request, then re-encryption fragments from m custodians."""
    app_ = app_context(ctx)
    record_id = _parse.record_id(record)  # before the key is unlocked
    if out_file is not None and out_file.exists():
        raise ConfigError(f"{out_file} exists; choose another --out (nothing was read)")
    result = sharing(app_, custodian_urls(custodian)).read_record(record_id)
    if out_file is not None:
        try:
            fd = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ConfigError(f"{out_file} exists; choose another --out") from None
        with os.fdopen(fd, "wb") as handle:
            handle.write(result.data)
        err().print(f"record {short(result.info.record_id)}: {len(result.data):,} bytes written to {out_file}")
        return
    sys.stdout.buffer.write(result.data + b"\n")
    sys.stdout.flush()


@app.command("report")
def report(ctx: typer.Context, custodian: Custodians = None, json_: JsonFlag = False) -> None:
    """Every access request to your records, and the custodians that released a key fragment for it."""
    rows = sharing(app_context(ctx), custodian_urls(custodian)).access_report()
    if json_:
        print_json([{"timestamp": r.timestamp, "blockNumber": r.block_number, "txHash": r.tx_hash,
                     "recordId": hexid(r.record_id), "reader": r.reader, "releasedBy": list(r.released_by)}
                    for r in rows])
        return
    for r in rows:
        out().print(f"{when(r.timestamp)}  {short(r.reader)} opened {short(r.record_id)}  "
                    f"released by {len(r.released_by)} custodians  tx {short(r.tx_hash)}")


def rotate(
    ctx: typer.Context,
    record: Annotated[str, typer.Argument(help="Id of the active record version to rotate.")],
    custodian: Custodians = None,
    threshold: Threshold = 2,
    json_: JsonFlag = False,
) -> None:
    """Re-encrypt a record under a new key (new version and CID), unpin the old blob, re-issue
    fragments only to grantees whose access is still valid."""
    record_id = _parse.record_id(record)  # before the key is unlocked
    side = sharing(app_context(ctx), custodian_urls(custodian), threshold)
    result = side.rotate(record_id)
    doc: dict[str, Any] = {
        "oldRecordId": hexid(result.old_record_id), "recordId": hexid(result.written.record_id),
        "cid": result.written.cid, "unpinned": result.unpinned, "reissuedTo": list(result.reissued_to),
        "custodiansUnreachable": list(result.unavailable),
    }
    if json_:
        print_json(doc)
        return
    out().print(f"rotated {short(result.old_record_id)} -> record {doc['recordId']}")
    out().print(f"  cid {result.written.cid} (old blob {result.unpinned} unpinned)")
    out().print(f"  fragments re-issued to {len(result.reissued_to)} grantees still valid")
    if result.unavailable:
        err().print(f"unreachable custodians keep old fragments until they see them destroyed: {result.unavailable}")


def erase(
    ctx: typer.Context,
    record: Annotated[str, typer.Argument(help="Id of a version of the record to erase (all its versions go).")],
    custodian: Custodians = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation (it cannot be undone).")] = False,
    json_: JsonFlag = False,
) -> None:
    """Erase a record and all its versions for good (GDPR Art. 17): tombstone, destroy key fragments and
    key shares, unpin, signed receipts."""
    app_ = app_context(ctx)
    record_id = _parse.record_id(record)
    if not yes:
        if not app_.stdin_is_terminal():
            raise ConfigError("erasure cannot be undone: pass --yes to confirm")
        typer.confirm(f"erase record {short(record_id)} and its earlier versions for good?", abort=True)
    result = sharing(app_, custodian_urls(custodian)).erase(record_id)
    if json_:
        print_json({
            "recordIds": [hexid(r) for r in result.record_ids], "tombstoneTxs": [t.tx_hash for t in result.tombstone_txs],
            "receipts": [r.to_json() for r in result.receipts], "custodiansUnreachable": list(result.unavailable),
            "unpinned": list(result.unpinned), "successors": [hexid(r) for r in result.successors],
            "reissuedShares": [{"grantee": r.grantee, "old": r.old, "new": r.new, "dropped": r.dropped,
                                "problem": r.problem} for r in result.reissued_shares],
            "unverified": [{"what": s.what, "reason": s.reason, "author": s.author} for s in result.unverified],
        })
        return
    out().print(f"erased {len(result.record_ids)} record versions; tombstoned in {len(result.tombstone_txs)} transactions")
    if result.successors:
        out().print(f"  including {len(result.successors)} later versions: {[hexid(r) for r in result.successors]}")
    for skipped in result.unverified:
        err().print(f"  {skipped.what} by {skipped.author} tombstoned, nothing of it unpinned: {skipped.reason}")
    for share in result.reissued_shares:
        if share.problem is not None:
            out().print(f"  key share {share.old} left in place, not re-issued: {share.problem}")
        elif share.new is None:
            out().print(f"  key share {share.old} for {share.grantee} unpinned (it held only erased records)")
        else:
            out().print(f"  key share {share.old} for {share.grantee} replaced by {share.new}: send the grantee "
                        f"the new CID (`ehr record get RECORD --key-share {share.new}`)")
    for receipt in result.receipts:
        out().print(f"  receipt from {receipt.custodian}: destroyed {receipt.destroyed} fragments, "
                    f"{receipt.remaining} remain (signature verified)")
    if result.unavailable:
        err().print(f"unreachable custodians destroy their fragments when they see the tombstone: {result.unavailable}")
