"""`ehr record`: add, amend, get, list and verify a patient's records."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ehr_client._files import replace_atomically
from ehr_client.cli import _parse
from ehr_client.cli._context import app_context
from ehr_client.cli._output import JsonFlag, ProgressStore, err, hexid, out, print_json, short, tx_line, when
from ehr_client.chain.client import TxResult
from ehr_client.claims import ClaimRegistry, Claims
from ehr_client.client import FHIR_MEDIA_TYPE, EHRClient, RecordInfo, Skipped, WriteResult
from ehr_client.client.write import prepare
from ehr_client.errors import ConfigError, EHRError, IntegrityError, InvalidRecord
from ehr_client.records import describe

app = typer.Typer(help="Add, amend, read, list and verify records.", no_args_is_help=True)

Category = Annotated[
    str | None,
    typer.Option("--category", help="Store an opaque file instead of FHIR JSON: pdf, document, dicom, image, genomic."),
]
InputFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="FHIR JSON or other file.")]


def info_json(info: RecordInfo) -> dict[str, Any]:
    return {
        "recordId": hexid(info.record_id),
        "patient": info.patient,
        "author": info.author,
        "scope": info.scope,
        "scopeNames": describe(info.scope),
        "status": info.status,
        "contentHash": hexid(info.content_hash),
        "cid": info.cid,
        "previousId": hexid(info.previous_id),
        "blockNumber": info.block_number,
        "timestamp": info.timestamp,
        "txHash": info.tx_hash,
        "batchId": hexid(info.batch.batch_id) if info.batch else None,
    }


def skipped_json(item: Skipped) -> dict[str, Any]:
    return {"what": item.what, "reason": item.reason, "author": item.author, "txHash": item.tx_hash}


def _report_write(result: WriteResult, json_: bool, claim: TxResult | None = None) -> None:
    if json_:
        print_json({
            "recordId": hexid(result.record_id), "cid": result.cid, "contentHash": hexid(result.content_hash),
            "txHash": result.tx.tx_hash if result.tx else None, "gasUsed": result.tx.gas_used if result.tx else None,
            "reusedPending": result.reused_pending, "scope": result.scope, "scopeNames": describe(result.scope),
            "claimTxHash": claim.tx_hash if claim else None,
        })
        return
    out().print(f"record {hexid(result.record_id)}")
    out().print(f"  cid {result.cid}")
    reused = "  (reused the blob stored by an earlier attempt)" if result.reused_pending else ""
    out().print(f"  {tx_line(result.tx)}{reused}")
    if claim is not None:
        out().print(f"  claim committed ({tx_line(claim)})")


def _commit_claim(client: EHRClient, written: WriteResult, category: str | None, json_: bool) -> TxResult | None:
    """When the deployment has a claim registry, commit to a FHIR record's claim (`ehr claim`). If that
    fails the record is reported as written, then the error: writing it again lands as the same
    record and only commits."""
    address = client.chain.deployment.contracts.get("ClaimRegistry")
    if not address or category is not None or client.get_record(written.record_id).patient == client.address:
        return None  # a patient's own record carries no attested claim
    try:
        return Claims(client, ClaimRegistry(client.chain, address)).commit(written)
    except EHRError:
        _report_write(written, json_)
        raise


def _check_input(file: Path, category: str | None, scope: int | None = None) -> None:
    """Validate the file before any key is unlocked (the write validates again, from the same bytes)."""
    if category is not None:
        prepare(file, category=category, scope=scope)
        return
    try:
        prepare(file, scope=scope)
    except InvalidRecord as exc:
        if file.read_bytes()[:1] not in (b"{", b"[", b" ", b"\n", b"\t", b"\r"):
            raise InvalidRecord(f"{file} is not FHIR JSON; to store it as a file pass --category "
                                "pdf|document|dicom|image|genomic") from None
        raise exc


def _write_client(ctx: typer.Context, file: Path, category: str | None) -> EHRClient:
    app_ = app_context(ctx)
    store = ProgressStore(app_.store())
    store.expected_upload = file.stat().st_size if category else None
    return app_.client(store=store)


@app.command("add")
def add(
    ctx: typer.Context,
    patient: Annotated[str, typer.Argument(help="The patient's address or local wallet name.")],
    file: InputFile,
    category: Category = None,
    scope: Annotated[str | None, typer.Option("--scope", help="Override the scope (e.g. lab); default: derived.")] = None,
    json_: JsonFlag = False,
) -> None:
    """Validate, encrypt, store and anchor a new record for PATIENT."""
    app_ = app_context(ctx)
    address = _parse.address(app_, patient)
    bits = int(_parse.scopes(scope)) if scope else None
    _check_input(file, category, bits)
    client = _write_client(ctx, file, category)
    written = client.add_record(address, file, category=category, scope=bits)
    _report_write(written, json_, _commit_claim(client, written, category, json_))


@app.command("amend")
def amend(
    ctx: typer.Context,
    record: Annotated[str, typer.Argument(help="Id of the record version to amend.")],
    file: InputFile,
    category: Category = None,
    json_: JsonFlag = False,
) -> None:
    """Anchor a new version of a record; the old version stays as history."""
    record_id = _parse.record_id(record)
    _check_input(file, category)
    client = _write_client(ctx, file, category)
    written = client.amend_record(record_id, file, category=category)
    _report_write(written, json_, _commit_claim(client, written, category, json_))


def _write_private(path: Path, data: bytes, *, force: bool) -> None:
    """Write decrypted data atomically, readable by the owner only."""
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; pass --force to overwrite it")
    replace_atomically(path, data)


@app.command("get")
def get(
    ctx: typer.Context,
    record: Annotated[str, typer.Argument(help="Record id (0x + 64 hex digits).")],
    out_file: Annotated[Path | None, typer.Option("--out", "-o", dir_okay=False,
                                                  help="Write the decrypted record here (mode 0600).")] = None,
    key_share: Annotated[str | None, typer.Option("--key-share", help="CID of the key share sent with your grant.")] = None,
    info: Annotated[bool, typer.Option("--info", help="Show what the chain says; no decryption, no access event.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="The --info facts as JSON.")] = False,
) -> None:
    """Read a record: check consent, record the access on chain, verify, decrypt (to stdout or --out)."""
    app_ = app_context(ctx)
    record_id = _parse.record_id(record)
    share = _parse.cid(key_share) if key_share else None
    if info or json_:
        facts = app_.reader().get_record(record_id)
        if json_:
            print_json(info_json(facts))
        else:
            _info_card(facts, app_.known_wallets())
        return
    if out_file is not None and out_file.exists() and not force:
        raise ConfigError(f"{out_file} exists; pass --force to overwrite it")  # before the audited read
    found = app_.reader().get_record(record_id)  # an absent or unreadable id fails before any key is unlocked
    store = ProgressStore(app_.store())
    result = app_.client(store=store).read_record(found, key_share=share)
    summary = f"record {short(record_id)}: {result.media_type}, {len(result.data):,} bytes, access recorded on chain"
    if out_file is not None:
        _write_private(out_file, result.data, force=force)
        err().print(f"{summary}; written to {out_file}")
        return
    if result.media_type != FHIR_MEDIA_TYPE and sys.stdout.isatty():
        raise InvalidRecord(f"the record is {result.media_type}, not text; pass --out FILE to save it")
    sys.stdout.buffer.write(result.data + b"\n")
    sys.stdout.flush()
    err().print(summary)


def _info_card(info: RecordInfo, names: dict[str, str]) -> None:
    card = Table.grid(padding=(0, 2))
    card.add_column(style="bold")
    card.add_column()
    for label, value in (
        ("record", hexid(info.record_id)), ("status", info.status), ("scope", ",".join(describe(info.scope))),
        ("patient", _named(info.patient, names, full=True)), ("author", _named(info.author, names, full=True)),
        ("anchored", f"{when(info.timestamp)}, block {info.block_number}, tx {info.tx_hash}"),
        ("previous", hexid(info.previous_id) or "-"), ("content hash", hexid(info.content_hash)), ("cid", info.cid),
        ("batch", f"{hexid(info.batch.batch_id)}, leaf {info.batch.index}" if info.batch else "-"),
    ):
        card.add_row(label, str(value))
    out().print(card)


def _named(address: str, names: dict[str, str], *, full: bool = False) -> str:
    name = names.get(address)
    shown = address if full else short(address)
    return f"{shown} ({name})" if name else shown


def _info_table(infos: list[RecordInfo], names: dict[str, str]) -> None:
    table = Table("record", "status", "scope", "author", "anchored", "amends", "batch")
    for i in infos:
        table.add_row(hexid(i.record_id), i.status, ",".join(describe(i.scope)), _named(i.author, names),
                      when(i.timestamp), short(i.previous_id), short(i.batch.batch_id) if i.batch else "")
    out().print(table)


@app.command("list")
def list_(
    ctx: typer.Context,
    patient: Annotated[str | None, typer.Argument(help="Patient address or wallet name; default: --wallet.")] = None,
    json_: JsonFlag = False,
) -> None:
    """List every record version of a patient, single and batched (chain facts only; no password needed).

    Batches another member anchored that cannot be verified are left out and reported."""
    app_ = app_context(ctx)
    address = _parse.address(app_, patient or app_.settings.wallet)
    listing = app_.reader().list_records_report(address)
    if json_:
        print_json({"records": [info_json(i) for i in listing.records],
                    "skipped": [skipped_json(s) for s in listing.skipped]})
        return
    for item in listing.skipped:
        err().print(f"[yellow]skipped[/] {item.what} by {item.author}: {item.reason}")
    if not listing.records:
        err().print(f"no records for {address}")
        return
    _info_table(list(listing.records), app_.known_wallets())


@app.command("verify")
def verify(
    ctx: typer.Context,
    records: Annotated[list[str] | None, typer.Argument(help="Record ids; default: every record of --patient.")] = None,
    patient: Annotated[str | None, typer.Option("--patient",
                                                help="Patient address or wallet name; default: --wallet.")] = None,
    json_: JsonFlag = False,
) -> None:
    """Check stored bytes against the hashes anchored on chain (no decryption). Exit 4 on any mismatch."""
    app_ = app_context(ctx)
    reader = app_.reader()
    if records:
        results = [reader.verify_record(_parse.record_id(r)) for r in records]
    else:
        results = reader.verify_all(_parse.address(app_, patient or app_.settings.wallet))
    if json_:
        print_json([{"recordId": hexid(r.record_id), "ok": r.ok, "problem": r.problem} for r in results])
    else:
        for r in results:
            mark = "[green]ok[/]" if r.ok else "[red]FAILED[/]"
            out().print(f"{hexid(r.record_id)}  {mark}{'  ' + r.problem if r.problem else ''}")
    failed = [r for r in results if not r.ok]
    if failed:
        raise IntegrityError(f"{len(failed)} of {len(results)} record(s) failed verification: "
                             + "; ".join(f"{short(r.record_id)} {r.problem}" for r in failed))
    if not results:
        err().print("no records to verify")
