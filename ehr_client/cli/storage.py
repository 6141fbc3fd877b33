"""`ehr storage`: check and repair records kept as erasure-coded fragments across storage nodes.

The node list comes from `--config`, `$EHR_STORAGE_CONFIG` or `<home>/ehr-storage.toml` (format
in `ehr_client.storage.nodes`). Records are resolved to their anchored manifest CID on chain, so
no password is needed: nothing is decrypted and nothing is written on chain.

Exit codes: 0 every record has all n fragments and every manifest replica; 1 some record lost
redundancy but can still be rebuilt (run `ehr storage repair`) or is not stored as fragments;
5 some record cannot be rebuilt right now (fewer than k fragments, or no manifest reachable).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ehr_client.batch.gc import collect
from ehr_client.cli import _parse
from ehr_client.cli._context import AppContext, app_context
from ehr_client.cli._output import err, hexid, out, print_json, short
from ehr_client.client import EHRClient, Identity, RecordInfo
from ehr_client.errors import BlobNotFound, ConfigError, InvalidRecord, StorageError, StorageUnavailable
from ehr_client.storage import LocalStore
from ehr_client.storage.fragmented import FragmentedStore, HealthReport, InvalidManifest, RepairResult
from ehr_client.storage.nodes import CONFIG_ENV, load_storage_config, storage_config_path

app = typer.Typer(help="Check and repair records stored as fragments across several storage nodes.",
                  no_args_is_help=True)

RecordsArg = Annotated[list[str] | None, typer.Argument(help="Record ids; default: every record of --patient.")]
PatientOption = Annotated[str | None, typer.Option("--patient", help="Patient address or wallet name; default: --wallet.")]
ConfigOption = Annotated[Path | None, typer.Option(
    "--config", envvar=CONFIG_ENV, dir_okay=False,
    help="Storage node list (TOML). Default: <home>/ehr-storage.toml.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]

OK, DEGRADED, UNRECOVERABLE, NOT_FRAGMENTED, ERASED = "ok", "degraded", "unrecoverable", "not fragmented", "erased"


@dataclass
class _Row:
    info: RecordInfo
    status: str
    report: HealthReport | None = None
    repair: RepairResult | None = None
    error: str = ""
    problems: list[str] = field(default_factory=list)


def open_store(app_: AppContext, config: Path | None) -> FragmentedStore:
    """The FragmentedStore that the storage configuration describes."""
    path = storage_config_path(explicit=config, home=app_.settings.home_dir)
    return FragmentedStore.from_config(load_storage_config(path))


def _records(app_: AppContext, store: FragmentedStore, records: list[str] | None, patient: str | None) -> list[RecordInfo]:
    reader = EHRClient(app_.chain(), store, Identity.generate(), state_dir=app_.journal_dir)
    if records:
        return [reader.get_record(_parse.record_id(r)) for r in records]
    return reader.list_records(_parse.address(app_, patient or app_.settings.wallet))


def _status(report: HealthReport) -> str:
    if report.complete:
        return OK
    return DEGRADED if report.recoverable else UNRECOVERABLE


def _guarded(info: RecordInfo, work: Callable[[], _Row]) -> _Row:
    """Run a check or repair of one record, turning what can go wrong with it into a row."""
    if info.status == "tombstoned":
        return _Row(info, ERASED)
    try:
        return work()
    except InvalidManifest:
        return _Row(info, NOT_FRAGMENTED, error="its CID names a plain blob, not a fragment manifest")
    except (StorageUnavailable, BlobNotFound) as exc:
        return _Row(info, UNRECOVERABLE, error=str(exc))


def _check_one(store: FragmentedStore, info: RecordInfo) -> _Row:
    def work() -> _Row:
        report = store.check(info.cid)
        return _Row(info, _status(report), report=report, problems=report.problems)

    return _guarded(info, work)


def _repair_one(store: FragmentedStore, info: RecordInfo) -> _Row:
    def work() -> _Row:
        result = store.repair(info.cid)
        problems = [f"fragment {i} not restored: {why}" for i, why in result.not_restored] + result.after.problems
        return _Row(info, _status(result.after), report=result.after, repair=result, problems=problems)

    return _guarded(info, work)


@contextmanager
def _progress(total: int, description: str) -> Iterator[Callable[[], None]]:
    console = err()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)


def _run(ctx: typer.Context, records: list[str] | None, patient: str | None, config: Path | None,
         action: Callable[[FragmentedStore, RecordInfo], _Row], description: str) -> tuple[list[_Row], int]:
    app_ = app_context(ctx)
    with open_store(app_, config) as store:
        infos = _records(app_, store, records, patient)
        rows: list[_Row] = []
        with _progress(len(infos), description) as advance:
            for info in infos:
                rows.append(action(store, info))
                advance()
        return rows, len(store.nodes)


def _json(row: _Row, node_count: int) -> dict[str, Any]:
    data: dict[str, Any] = {"recordId": hexid(row.info.record_id), "cid": row.info.cid, "status": row.status,
                            "error": row.error or None}
    report = row.report
    if report is not None:
        data.update({
            "k": report.k, "n": report.n, "intact": report.intact, "nodes": node_count,
            "manifestCopies": len(report.manifest_on), "unreachable": list(report.unreachable),
            "fragments": [{"index": f.index, "node": f.node, "status": f.status.value, "foundOn": f.found_on,
                           "problem": f.problem or None} for f in report.fragments],
        })
    if row.repair is not None:
        data.update({
            "intactBefore": row.repair.before.intact,
            "restored": [{"index": i, "node": node} for i, node in row.repair.restored],
            "manifestCopiesRestored": list(row.repair.manifest_copies),
            "notRestored": [{"index": i, "problem": why} for i, why in row.repair.not_restored],
        })
    return data


def _table(rows: list[_Row], node_count: int, *, repaired: bool) -> None:
    columns = ["record", "fragments intact", "manifest copies", "status", "details"]
    if repaired:
        columns.insert(2, "restored")
    table = Table(*columns)
    colour = {OK: "green", DEGRADED: "yellow", UNRECOVERABLE: "red", NOT_FRAGMENTED: "yellow", ERASED: "dim"}
    for row in rows:
        report = row.report
        cells = [
            short(row.info.record_id),
            f"{report.intact}/{report.n} (k={report.k})" if report else "-",
            f"{len(report.manifest_on)}/{node_count}" if report else "-",
            f"[{colour[row.status]}]{row.status}[/]",
            "; ".join(row.problems) or row.error,
        ]
        if repaired:
            restored = row.repair.restored if row.repair else ()
            cells.insert(2, ", ".join(f"#{i}->{node}" for i, node in restored) or "-")
        table.add_row(*cells)
    out().print(table)


def _finish(rows: list[_Row], node_count: int, json_: bool, *, repaired: bool) -> None:
    if json_:
        print_json([_json(row, node_count) for row in rows])
    elif rows:
        _table(rows, node_count, repaired=repaired)
    if not rows:
        err().print("no records to check")
        return
    broken = [r for r in rows if r.status == UNRECOVERABLE]
    if broken:
        raise StorageUnavailable(
            f"{len(broken)} of {len(rows)} record(s) cannot be rebuilt now ("
            + ", ".join(short(r.info.record_id) for r in broken)
            + "): fewer than k fragments or no manifest replica is reachable; bring the storage nodes back"
            + ("" if repaired else ", then run `ehr storage repair`")
        )
    plain = [r for r in rows if r.status == NOT_FRAGMENTED]
    if plain:
        raise InvalidRecord(
            f"{len(plain)} record(s) are not stored as fragments (" + ", ".join(short(r.info.record_id) for r in plain)
            + "); they were written with another store, which `ehr record verify` checks instead"
        )
    degraded = [r for r in rows if r.status == DEGRADED]
    if degraded:
        hint = "some nodes still do not answer and no spare node was free" if repaired else "run `ehr storage repair`"
        raise StorageError(
            f"{len(degraded)} of {len(rows)} record(s) are readable but short of full redundancy ("
            + ", ".join(short(r.info.record_id) for r in degraded) + f"); {hint}"
        )


@app.command("check")
def check(
    ctx: typer.Context,
    records: RecordsArg = None,
    patient: PatientOption = None,
    config: ConfigOption = None,
    json_: JsonFlag = False,
) -> None:
    """Count the intact fragments and manifest replicas of records (reads and verifies every fragment)."""
    rows, node_count = _run(ctx, records, patient, config, _check_one, "checking fragments")
    _finish(rows, node_count, json_, repaired=False)


@app.command("repair")
def repair(
    ctx: typer.Context,
    records: RecordsArg = None,
    patient: PatientOption = None,
    config: ConfigOption = None,
    json_: JsonFlag = False,
) -> None:
    """Rebuild missing or corrupt fragments (on their node, else on a free spare) and manifest replicas.

    The anchored CID stays valid: fragments are rewritten byte for byte, so the manifest never changes.
    """
    rows, node_count = _run(ctx, records, patient, config, _repair_one, "repairing fragments")
    _finish(rows, node_count, json_, repaired=True)


@app.command("gc")
def gc(
    ctx: typer.Context,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the garbage; without it, only report (dry run).")]
    = False,
    grace: Annotated[str, typer.Option("--grace", help="Never touch blobs younger than this (e.g. 24h, 7d).")] = "24h",
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Find blobs of the local store that no anchored record, batch, journal or key share references."""
    app_ = app_context(ctx)
    seconds = _parse.duration(grace)
    store = app_.store()
    if not isinstance(store, LocalStore):
        raise ConfigError("garbage collection works on the embedded store (--store local); Kubo has `ipfs repo gc`")
    journals = app_.settings.home_dir / "journal"
    state_dirs = sorted(p for p in journals.iterdir() if p.is_dir()) if journals.is_dir() else []
    report = collect(app_.chain(), store, state_dirs, grace=seconds, delete=delete)
    if json_:
        print_json({"garbage": list(report.garbage), "bytes": report.bytes_garbage, "referenced": report.referenced,
                    "tooYoung": report.too_young, "removed": report.removed, "dryRun": not delete,
                    "erased": list(report.erased), "unfinishedErasures": list(report.unfinished_erasures)})
        return
    verb = "removed" if delete else "would remove (dry run; --delete to remove)"
    out().print(f"{verb} {len(report.garbage)} unreferenced blobs ({report.bytes_garbage:,} bytes); kept "
                f"{report.referenced} referenced and {report.too_young} younger than {grace}")
    if report.erased:
        out().print(f"  {len(report.erased)} of them were left by erasures interrupted after their tombstone")
    if report.unfinished_erasures:
        err().print(f"erasure unfinished: key shares {list(report.unfinished_erasures)} still hold keys of erased "
                    "records; run `ehr record erase RECORD` again for each erased record to re-issue them")
