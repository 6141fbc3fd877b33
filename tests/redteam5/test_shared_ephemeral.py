"""Attacks on batched records whose wrapped data keys share one ephemeral X25519 key per reader
(ehr_client/crypto/wrap.py `KeyWrapper`, used by ehr_client/batch/writer.py)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from ehr_client.batch import BatchItem, import_directory
from ehr_client.batch.writer import BatchWriter
from ehr_client.client import EHRClient, Identity
from ehr_client.crypto import iter_decrypt, unwrap_data_key
from ehr_client.errors import DecryptionError
from ehr_client.package import parse_header
from ehr_client.records import canonicalize
from tests.batch.conftest import observation
from tests.batch.test_batch_resume import _kill_mid_import
from tests.portal_format.node import run_node


def _sealed(client: EHRClient, record_id: bytes) -> tuple[Any, Any, int, bytes]:
    info = client.get_record(record_id)
    blob = client.fetch_verified(info, doing="inspected")
    header, offset = parse_header(blob)
    return info, header, offset, blob


def test_a_data_key_or_wrap_of_one_batched_record_opens_no_sibling(
        people: dict[str, EHRClient], writer_lab: EHRClient, ids: dict[str, Identity]) -> None:
    """The lab writes two lab results for the patient in one batch, so both of the patient's wraps
    (and both of the lab's) are sealed under one ephemeral key. Someone who holds the first record's
    data key (released to them for that record alone) and every wrap moves them to the sibling: the
    wraps do not open under the sibling's binding, for the patient or the lab, and the first data
    key does not decrypt the sibling. Both records still read for the patient."""
    patient = people["patient"]
    written = BatchWriter(writer_lab, batch_size=2).write(
        [BatchItem(patient.address, observation(1)), BatchItem(patient.address, observation(2))])
    first_id, sibling_id = written.record_ids
    assert len(written.batches) == 1
    first, first_header, _, _ = _sealed(patient, first_id)
    sibling, sibling_header, sibling_offset, sibling_blob = _sealed(patient, sibling_id)
    sibling_binding = sibling.binding(sibling_header.version)

    for name in ("patient", "lab"):
        me = bytes.fromhex(ids[name].address[2:])
        (first_wrap,), (sibling_wrap,) = first_header.wrap_for(me), sibling_header.wrap_for(me)
        assert first_wrap.wrapped[1:33] == sibling_wrap.wrapped[1:33], "one ephemeral key per reader per batch"
        assert first_wrap.wrapped[33:45] != sibling_wrap.wrapped[33:45], "a nonce of its own per wrap"
        secret = ids[name].current_key[1]
        with pytest.raises(DecryptionError):
            unwrap_data_key(first_wrap.wrapped, secret, associated_data=sibling_binding.associated_data)

    released = unwrap_data_key(first_header.wrap_for(bytes.fromhex(patient.address[2:]))[0].wrapped,
                               ids["patient"].current_key[1],
                               associated_data=first.binding(first_header.version).associated_data)
    with pytest.raises(DecryptionError):
        b"".join(iter_decrypt(memoryview(sibling_blob)[sibling_offset:], released, record_id=sibling_id,
                              version=sibling_header.version, context=sibling_binding.context))
    assert [len(patient.read_record(i).data) > 0 for i in (first_id, sibling_id)] == [True, True]


def test_a_batch_straddling_a_kill_9_reads_whole_under_both_ephemeral_keys(
        people: dict[str, EHRClient], writer_lab: EHRClient, suite: Any, ids: dict[str, Identity],
        tmp_path: Path) -> None:
    """The lab's import is killed (SIGKILL) with 3 records of a batch stored, sealed under one
    ephemeral key that dies with the process; the resumed import seals the batch's other 3 under a
    new one. Every record of the batch reads for the patient, and the two halves' wraps carry
    different ephemeral keys (none was written down to be reused)."""
    patient = people["patient"]
    folder = tmp_path / "import"
    folder.mkdir()
    for i in range(6):
        (folder / f"obs-{i:04d}.json").write_text(json.dumps(observation(i)))
    _kill_mid_import(tmp_path, suite, ids, patient.address, folder, batch_size=6, kill_after_stored=3)

    summary = import_directory(writer_lab, patient.address, folder, batch_size=6).summary

    assert (summary.reused, summary.stored, len(summary.batches)) == (3, 3, 1)
    me = bytes.fromhex(patient.address[2:])
    ephemerals = []
    for i, record_id in enumerate(summary.record_ids):
        _, header, _, _ = _sealed(patient, record_id)
        ephemerals.append(header.wrap_for(me)[0].wrapped[1:33])
        assert patient.read_record(record_id).data == canonicalize(observation(i))
    assert len(set(ephemerals[:3])) == len(set(ephemerals[3:])) == 1 and ephemerals[0] != ephemerals[3]


def test_the_portal_page_code_opens_each_record_of_a_batch_and_no_wrap_moved_to_a_sibling(
        people: dict[str, EHRClient], writer_lab: EHRClient, ids: dict[str, Identity]) -> None:
    """portal/src/format.js (the page's reader, in a real Node process) opens each record of a batch
    with the patient's key and the chain's facts; a package spliced from the first record with the
    patient's wrap of its sibling (same ephemeral key) does not open there (DecryptionError), even
    with the content-hash check skipped."""
    patient = people["patient"]
    record_ids = BatchWriter(writer_lab, batch_size=2).write(
        [BatchItem(patient.address, observation(10)), BatchItem(patient.address, observation(11))]).record_ids
    secrets = {str(version): secret.hex() for version, secret in ids["patient"].x25519.items()}

    def open_op(info: Any, blob: bytes, *, check_hash: bool = True) -> dict[str, Any]:
        expected = {"record_id": info.record_id.hex(), "patient": info.patient, "scope": info.scope,
                    "author": info.author, **({"content_hash": info.content_hash.hex()} if check_hash else {})}
        return {"op": "open_package", "package": blob.hex(), "reader": patient.address, "x25519_secrets": secrets,
                "expected": expected}

    (first, first_header, first_offset, first_blob), (_, sibling_header, _, _) = sealed = [
        _sealed(patient, record_id) for record_id in record_ids]
    me = bytes.fromhex(patient.address[2:])
    (sibling_wrap,) = sibling_header.wrap_for(me)
    spliced_wraps = tuple(dataclasses.replace(w, wrapped=sibling_wrap.wrapped) if w.reader == me else w
                          for w in first_header.wraps)
    spliced = dataclasses.replace(first_header, wraps=spliced_wraps).to_bytes() + first_blob[first_offset:]
    results = run_node([open_op(info, blob) for info, _, _, blob in sealed]
                       + [open_op(first, spliced, check_hash=False)])

    assert [bytes.fromhex(r.get("plaintext", "")) for r in results[:2]] == [
        canonicalize(observation(10)), canonicalize(observation(11))], results[:2]
    assert (results[2]["ok"], results[2].get("error")) == (False, "DecryptionError"), results[2]
