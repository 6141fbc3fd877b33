"""Batch anchoring: many records under one Merkle root, one transaction per batch.

Writing (`BatchWriter`, `import_directory`)::

    writer = BatchWriter(lab_client, batch_size=256)
    summary = writer.write(BatchItem(patient, resource) for resource in resources)
    # a crash, a timeout or a killed process: run the same write again (or writer.resume()); it reuses
    # what was stored, does not re-anchor what was mined, and never stores a record twice

Reading (`list_batched_records`, `read_batched_record`, `read_history`) verifies a batched record as
strictly as `EHRClient.read_record` verifies a single one: manifest sha256 against the chain, Merkle
proof off and on chain, the author's write permission at the anchoring block, `canRead`, an on-chain
access request, the blob's sha256 against the leaf, decryption, FHIR validation.

Sharing: `share_keys` is `EHRClient.share_keys` extended to batched records; use it (with
`grant(..., share_keys=False)` / `sign_grant(..., share_keys=False)`) when the patient has batched records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from eth_utils import to_checksum_address

from ehr_client._batch_journal import BatchBusy
from ehr_client._batch_manifest import MANIFEST_FORMAT, BatchLeaf, BatchManifest, patient_address
from ehr_client._batch_read import (
    BatchedRecord,
    find_batched_record,
    list_batched_records,
    read_batched_record,
    read_batched_records,
    read_history,
)
from ehr_client._batch_rpc import Call, call_many
from ehr_client._batch_write import (
    DEFAULT_BATCH_SIZE,
    MAX_BATCH_SIZE,
    BatchItem,
    BatchProgress,
    BatchResult,
    BatchWriter,
    WriteSummary,
    check_write_permission,
)
from ehr_client.client import EHRClient
from ehr_client.crypto import record_associated_data, wrap_data_key
from ehr_client.errors import InvalidRecord
from ehr_client.records import validate_fhir
from ehr_client.sharing import KeyShare, ShareEntry
from ehr_client.storage import Cid

__all__ = [
    "DEFAULT_BATCH_SIZE", "MANIFEST_FORMAT", "MAX_BATCH_SIZE", "BatchBusy", "BatchItem", "BatchLeaf",
    "BatchManifest", "BatchProgress", "BatchResult", "BatchWriter", "BatchedRecord", "ImportResult",
    "WriteSummary", "find_batched_record", "import_directory", "list_batched_records", "read_batched_record",
    "read_batched_records", "read_history", "share_keys",
]

_TOMBSTONED = 3


@dataclass(frozen=True)
class ImportResult:
    """What `import_directory` did, per file sorted by name (`files`) and per batch."""

    files: tuple[Path, ...]
    summary: WriteSummary


def import_directory(
    client: EHRClient,
    patient: str,
    directory: Path | str,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[BatchProgress], None] | None = None,
) -> ImportResult:
    """Write every `*.json` file of `directory` (one FHIR resource per file) as a record of `patient`.

    Every file is validated, and the author's right to write each of their scopes checked, before
    anything is stored, so a bad file or a missing grant stops the import with nothing written. An
    interrupted import resumes when run again on the same directory.

    Raises:
        InvalidRecord: no JSON files, or a file is not a valid FHIR resource (the message names it).
        AccessDenied: the caller may not write this patient's records in one of the scopes.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise InvalidRecord(f"{folder} is not a directory; give the folder holding the FHIR *.json files")
    files = tuple(sorted(p for p in folder.glob("*.json") if p.is_file()))
    if not files:
        raise InvalidRecord(f"{folder} holds no *.json files; put one FHIR resource per file there")
    patient = patient_address(patient)
    scopes = set()
    for path in files:
        try:
            scopes.add(int(validate_fhir(path).scope))
        except InvalidRecord as exc:
            raise InvalidRecord(f"{path.name}: {exc}; nothing was imported") from None
    check_write_permission(client, {(patient, scope) for scope in scopes}, require_keys=True)
    writer = BatchWriter(client, batch_size=batch_size)
    summary = writer.write((BatchItem(patient, path) for path in files), progress=progress, total=len(files))
    return ImportResult(files, summary)


def share_keys(client: EHRClient, grantee: str, scopes: int) -> tuple[Cid | None, int]:
    """`EHRClient.share_keys` covering batched records too: seal the data keys of the caller's active
    single records and non-erased batched records within `scopes` to `grantee`."""
    me = client.address
    records = [(r.record_id, r.cid) for r in client.list_records(me)
               if r.status == "active" and r.scope & scopes == r.scope]
    batched = [b for b in list_batched_records(client, me) if b.scope & scopes == b.scope]
    chain = client.chain
    statuses = call_many(chain, [Call(chain.records, "recordStatus", (b.record_id,)) for b in batched],
                         action="look up record status")
    records += [(b.record_id, b.cid) for b, status in zip(batched, statuses, strict=True) if status != _TOMBSTONED]
    if not records:
        return None, 0
    key_version, public = client.encryption_key_of(grantee)
    own = bytes.fromhex(me[2:])
    entries = []
    for record_id, cid in records:
        header = client._read_header(cid)
        aad = record_associated_data(record_id, header.version)
        wrap = next(iter(header.wrap_for(own)), None)
        if wrap is None:
            continue
        data_key = client._unwrap(wrap.wrapped, wrap.key_version, aad)
        entries.append(ShareEntry(record_id, header.version, key_version,
                                  wrap_data_key(data_key, public, associated_data=aad)))
    share = KeyShare(me, to_checksum_address(grantee), tuple(entries))
    return client.store.put(share.to_bytes()), len(entries)
