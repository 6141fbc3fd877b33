"""`ehr record import DIR`: every FHIR *.json file of a folder as a record of one patient, anchored in
batches (one transaction per batch) with a progress bar. An interrupted import resumes when run again.

Registered by the CLI on the `record` sub-app: `records.app.command("import")(batch.import_records)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ehr_client.batch import DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, BatchProgress, ImportResult, import_directory
from ehr_client.batch.bundle import BundleImport, import_bundle
from ehr_client.claims import ClaimRegistry, Claims
from ehr_client.client import EHRClient
from ehr_client.records.fhir import validate_bundle_entries
from ehr_client.cli import _parse
from ehr_client.cli._context import app_context
from ehr_client.cli._output import JsonFlag, err, hexid, out, print_json, tx_line


def _describe(p: BatchProgress) -> str:
    resumed = f", {p.reused + p.skipped} from the interrupted run" if p.reused or p.skipped else ""
    return f"encrypting + storing ({p.anchored} anchored in {p.batches} batch{'es' if p.batches != 1 else ''}{resumed})"


def _report(result: ImportResult, patient: str, json_: bool) -> None:
    summary = result.summary
    if json_:
        print_json({
            "patient": patient,
            "stored": summary.stored,
            "reused": summary.reused,
            "skipped": summary.skipped,
            "records": [
                {"file": path.name, "recordId": hexid(record_id)}
                for path, record_id in zip(result.files, summary.record_ids, strict=True)
            ],
            "batches": [
                {"batchId": hexid(b.batch_id), "root": hexid(b.root), "records": len(b.records),
                 "scope": b.records[0].scope if b.records else None, "manifestCid": b.manifest_cid,
                 "manifestHash": hexid(b.manifest_hash), "txHash": b.tx.tx_hash if b.tx else None,
                 "gasUsed": b.tx.gas_used if b.tx else None}
                for b in summary.batches
            ],
            "invalid": [{"file": f.path.name, "problem": f.problem} for f in result.skipped],
        })
        return
    out().print(f"imported {len(result.files)} files for {patient}: {summary.stored} stored now, "
                f"{summary.reused} stored by an interrupted run, {summary.skipped} already anchored")
    for batch in summary.batches:
        out().print(f"  batch {hexid(batch.batch_id)}: {len(batch.records)} records, {tx_line(batch.tx)}")
    for invalid in result.skipped:
        err().print(f"[yellow]skipped[/] {invalid.path.name}: {invalid.problem}")


def import_records(
    ctx: typer.Context,
    source: Annotated[Path, typer.Argument(exists=True, readable=True,
                                           help="A folder of FHIR *.json files (one resource each), or a FHIR Bundle "
                                                "file (one record per entry).")],
    patient: Annotated[str, typer.Option("--patient", help="The patient's address or local wallet name.")],
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=MAX_BATCH_SIZE,
                                            help="Records anchored per transaction.")] = DEFAULT_BATCH_SIZE,
    skip_invalid: Annotated[bool, typer.Option("--skip-invalid",
                                               help="Import the valid files or entries and list the invalid ones.")]
    = False,
    json_: JsonFlag = False,
) -> None:
    """Validate every file (or Bundle entry), then encrypt, store and anchor them in batches for PATIENT.

    A Bundle becomes one record per entry, its internal references rewritten to the entries' ids
    so they resolve when read back; to keep a Bundle as one record, use `record add`."""
    app_ = app_context(ctx)
    address = _parse.address(app_, patient)
    if source.is_file():
        validate_bundle_entries(source)  # a wrong file fails before any key is unlocked
    client = app_.client()
    console = err()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("validating", total=None)

        def progress(p: BatchProgress) -> None:
            bar.update(task, completed=p.processed, total=p.total, description=_describe(p))

        if source.is_file():
            bundle = import_bundle(client, address, source, batch_size=batch_size, skip_invalid=skip_invalid,
                                   progress=progress)
            _report_bundle(bundle, address, json_)
            _commit_claims(client, bundle.summary.record_ids, json_)
            return
        result = import_directory(client, address, source, batch_size=batch_size, skip_invalid=skip_invalid,
                                  progress=progress)
    _report(result, address, json_)
    _commit_claims(client, result.summary.record_ids, json_)


def _commit_claims(client: EHRClient, record_ids: Sequence[bytes], json_: bool) -> None:
    """When the deployment has a claim registry, commit to the claims of the records just anchored (`ehr
    claim`). The import is reported first: if a commitment fails, importing again commits the rest."""
    address = client.chain.deployment.contracts.get("ClaimRegistry")
    if not address or not record_ids or client.get_record(record_ids[0]).patient == client.address:
        return  # a patient's own records carry no attested claims
    sent = Claims(client, ClaimRegistry(client.chain, address)).commit_batched(record_ids)
    if not json_:
        out().print(f"  claims committed for {len(sent)} record{'s' if len(sent) != 1 else ''}"
                    + (f" (last {tx_line(sent[-1])})" if sent else ""))


def _report_bundle(result: BundleImport, patient: str, json_: bool) -> None:
    ids = result.summary.record_ids
    if json_:
        print_json({"patient": patient, "stored": result.summary.stored, "skipped": result.summary.skipped,
                    "records": [{"entry": index, "reference": ref, "recordId": hexid(record_id)}
                                for (index, ref), record_id in zip(result.entries, ids, strict=True)],
                    "invalid": [{"entry": index, "problem": why} for index, why in result.skipped]})
        return
    out().print(f"imported {len(ids)} Bundle entries for {patient} as records "
                f"({result.summary.stored} stored now, {result.summary.skipped} already anchored)")
    for (index, ref), record_id in zip(result.entries, ids, strict=True):
        out().print(f"  entry {index} {ref}: {hexid(record_id)}")
    for index, why in result.skipped:
        err().print(f"[yellow]skipped[/] entry {index}: {why}")
