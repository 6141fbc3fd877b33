"""Import a FHIR Bundle as hospitals send them: one record per entry, with the Bundle's own
references kept resolvable.

A transaction or collection Bundle (a patient's history, an International Patient Summary) links
its entries by `fullUrl` (often `urn:uuid:...`). Stored one record per entry, those links would
dangle, so the import does what a FHIR server does when it processes a transaction: every entry
resource keeps (or, if it has none, gets) a logical id, and every reference to another entry's
`fullUrl` is rewritten to that entry's `ResourceType/id`. Read back, an entry's references name
resources the same import wrote. Ids are derived from the fullUrl (or the content), so importing
the same Bundle again lands as the same records. Each entry is scoped by its own resource type
and validated again after the rewrite; invalid entries stop the import (every one is listed)
unless `skip_invalid`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ehr_client.batch.writer import DEFAULT_BATCH_SIZE, BatchItem, BatchProgress, BatchWriter, WriteSummary
from ehr_client.client import EHRClient
from ehr_client.client.manifest import address
from ehr_client.errors import InvalidRecord
from ehr_client.records import validate_fhir
from ehr_client.records.fhir import validate_bundle_entries

_UUID = re.compile(r"^urn:uuid:([0-9a-fA-F-]{36})$")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@dataclass(frozen=True)
class BundleImport:
    """What `import_bundle` did: per written entry its index and the reference it answers to."""

    entries: tuple[tuple[int, str], ...]
    skipped: tuple[tuple[int, str], ...]
    summary: WriteSummary


def _logical_id(resource: dict[str, Any], full_url: str | None, canonical: bytes) -> str:
    current = resource.get("id")
    if isinstance(current, str) and _ID.match(current):
        return current
    match = _UUID.match(full_url or "")
    if match:
        return match.group(1).lower()
    return hashlib.sha256(canonical).hexdigest()[:32]


def _rewrite(value: Any, targets: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: (targets.get(v, v) if k == "reference" and isinstance(v, str) else _rewrite(v, targets))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, targets) for v in value]
    return value


def import_bundle(
    client: EHRClient,
    patient: str,
    bundle: Path | str,
    *,
    skip_invalid: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[BatchProgress], None] | None = None,
) -> BundleImport:
    """Write every entry resource of a FHIR Bundle file as a record of `patient` (see the module docstring).

    Raises:
        InvalidRecord: not a Bundle, the Bundle itself is invalid, or entries are invalid without
            `skip_invalid` (all of them named).
        AccessDenied: the caller may not write this patient's records in one of the entries' scopes.
    """
    path = Path(bundle)
    patient = address(patient)
    entries = validate_bundle_entries(path)
    document = json.loads(path.read_bytes())
    invalid = [(e.index, "; ".join(f"{p.path}: {p.rule}" for p in e.problems)) for e in entries if e.record is None]
    if invalid and not skip_invalid:
        listed = "; ".join(f"entry {i}: {why}" for i, why in invalid)
        raise InvalidRecord(f"{len(invalid)} of {len(entries)} Bundle entries are invalid, nothing was imported "
                            f"(--skip-invalid imports the rest): {listed}")
    valid = [e for e in entries if e.record is not None]
    targets: dict[str, str] = {}
    resources: dict[int, dict[str, Any]] = {}
    for entry in valid:
        assert entry.record is not None
        resource = dict(document["entry"][entry.index]["resource"])
        logical = _logical_id(resource, entry.full_url, entry.record.canonical)
        resource["id"] = logical
        resources[entry.index] = resource
        if entry.full_url:
            targets[entry.full_url] = f"{resource['resourceType']}/{logical}"
    items, written = [], []
    for entry in valid:
        rewritten = _rewrite(resources[entry.index], targets)
        try:
            validate_fhir(rewritten)
        except InvalidRecord as exc:
            if not skip_invalid:
                raise InvalidRecord(f"Bundle entry {entry.index} is invalid once its references are resolved: {exc}; "
                                    "nothing was imported") from None
            invalid.append((entry.index, str(exc)))
            continue
        items.append(BatchItem(patient, rewritten))
        written.append((entry.index, f"{rewritten['resourceType']}/{rewritten['id']}"))
    summary = BatchWriter(client, batch_size=batch_size).write(items, progress=progress, total=len(items))
    return BundleImport(tuple(written), tuple(invalid), summary)
