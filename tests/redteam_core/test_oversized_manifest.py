"""One member's bad batch must not cost everybody else (DESIGN: skipped and reported, never fatal). A lab
holding the patient's amend grant anchors a batch whose manifest pointer names a blob far over the
manifest limit (64 MiB), with its true sha256 so the hash check passes. Every listing of the patient,
by anyone, reads the whole blob into memory (twice: `load_untrusted` copies it) before the size limit is
applied, and again on every listing (only verified manifests are cached)."""

from __future__ import annotations

import hashlib
import os
import resource
from collections.abc import Iterator

import pytest

from ehr_client.client import EHRClient
from ehr_client.client.manifest import MAX_MANIFEST_BYTES
from ehr_client.records import Scope
from ehr_client.storage import LocalStore, cid_to_bytes
from tests.constants import DAY

LAB = int(Scope.LAB)
CHUNK = 4 * 1024 * 1024
BLOB_BYTES = 6 * MAX_MANIFEST_BYTES  # 384 MiB


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def test_an_oversized_manifest_is_refused_without_reading_it_whole(people: dict[str, EHRClient]) -> None:
    patient, lab = people["patient"], people["lab"]
    patient.grant(lab.address, LAB, access="amend", expires_at=patient.chain.now() + DAY, share_keys=False)
    store = lab.store
    assert isinstance(store, LocalStore)
    digest = hashlib.sha256()

    def chunks() -> Iterator[bytes]:  # the attacker streams it: his own memory stays small
        block = b" " * CHUNK
        for _ in range(BLOB_BYTES // CHUNK):
            digest.update(block)
            yield block

    cid = store.put_stream(chunks())
    try:
        fn = lab.chain.records.functions.anchorBatch(os.urandom(32), patient.address, LAB, os.urandom(32), 4,
                                                     digest.digest(), cid_to_bytes(cid))
        lab.chain.transact(lab.identity.account, fn, action="anchor oversized manifest")
        before = _peak_rss_bytes()

        report = patient.list_records_report(patient.address)

        assert len(report.skipped) == 1 and report.skipped[0].author == lab.address
        grown = _peak_rss_bytes() - before
        assert grown < 2 * MAX_MANIFEST_BYTES, f"listing one patient's records took {grown >> 20} MiB more memory"
    finally:
        store.remove(cid)
