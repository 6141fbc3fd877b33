"""Batch anchoring: many records of a patient under one Merkle root, one transaction per batch.

Writing (`BatchWriter`, `import_directory`)::

    writer = BatchWriter(lab_client, batch_size=256)
    summary = writer.write(BatchItem(patient, resource) for resource in resources)
    # a crash, a timeout or a killed process: run the same write again (or writer.resume()); it reuses
    # what was stored, does not re-anchor what was mined, and never stores a record twice

Batched records are records like any other: `EHRClient.get_record`, `list_records`, `read_record`,
`read_history`, `amend_record`, `share_keys` and erasure find and handle them (the client's
`locate` and `read` pipelines), so this package only writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ehr_client.batch.journal import BatchBusy, JournalDamaged
from ehr_client.batch.writer import (
    DEFAULT_BATCH_SIZE,
    MAX_BATCH_SIZE,
    BatchItem,
    BatchProgress,
    BatchRecord,
    BatchResult,
    BatchWriter,
    WriteSummary,
    check_write_permission,
)
from ehr_client.client import EHRClient
from ehr_client.client.manifest import MANIFEST_FORMAT, BatchLeaf, BatchManifest, address
from ehr_client.errors import InvalidRecord
from ehr_client.records import validate_fhir

__all__ = [
    "DEFAULT_BATCH_SIZE", "MANIFEST_FORMAT", "MAX_BATCH_SIZE", "BatchBusy", "BatchItem", "BatchLeaf",
    "BatchManifest", "BatchProgress", "BatchRecord", "BatchResult", "BatchWriter", "ImportResult",
    "InvalidFile", "JournalDamaged", "WriteSummary", "import_directory",
]


@dataclass(frozen=True)
class InvalidFile:
    path: Path
    problem: str


@dataclass(frozen=True)
class ImportResult:
    """What `import_directory` did: the files imported (sorted by name), the files skipped as invalid,
    and the write summary."""

    files: tuple[Path, ...]
    summary: WriteSummary
    skipped: tuple[InvalidFile, ...] = ()


def import_directory(
    client: EHRClient,
    patient: str,
    directory: Path | str,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    skip_invalid: bool = False,
    progress: Callable[[BatchProgress], None] | None = None,
) -> ImportResult:
    """Write every `*.json` file of `directory` (one FHIR resource per file) as a record of `patient`.

    Every file is validated, and the author's right to write each of their scopes checked, before
    anything is stored. An invalid file stops the import with nothing written and the message lists
    every invalid file; with `skip_invalid` the valid files are imported and the invalid ones
    reported in `ImportResult.skipped`. An interrupted import resumes when run again.

    Raises:
        InvalidRecord: no JSON files, or invalid files without `skip_invalid` (all of them named).
        AccessDenied: the caller may not write this patient's records in one of the scopes.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise InvalidRecord(f"{folder} is not a directory; give the folder holding the FHIR *.json files")
    candidates = tuple(sorted(p for p in folder.glob("*.json") if p.is_file()))
    if not candidates:
        raise InvalidRecord(f"{folder} holds no *.json files; put one FHIR resource per file there")
    patient = address(patient)
    scopes: set[int] = set()
    files: list[Path] = []
    invalid: list[InvalidFile] = []
    for path in candidates:
        try:
            scopes.add(int(validate_fhir(path).scope))
            files.append(path)
        except InvalidRecord as exc:
            invalid.append(InvalidFile(path, str(exc)))
    if invalid and not skip_invalid:
        listed = "; ".join(f"{f.path.name}: {f.problem}" for f in invalid)
        raise InvalidRecord(f"{len(invalid)} of {len(candidates)} files are invalid, nothing was imported "
                            f"(--skip-invalid imports the rest): {listed}")
    check_write_permission(client, {(patient, scope) for scope in scopes}, require_keys=True)
    writer = BatchWriter(client, batch_size=batch_size)
    summary = writer.write((BatchItem(patient, path) for path in files), progress=progress, total=len(files))
    return ImportResult(tuple(files), summary, tuple(invalid))
