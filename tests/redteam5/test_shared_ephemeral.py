"""Attacks on batched records whose wrapped data keys share one ephemeral X25519 key per reader
(ehr_client/crypto/wrap.py `KeyWrapper`, used by ehr_client/batch/writer.py)."""

from __future__ import annotations

from typing import Any

import pytest

from ehr_client.batch import BatchItem
from ehr_client.batch.writer import BatchWriter
from ehr_client.client import EHRClient, Identity
from ehr_client.crypto import iter_decrypt, unwrap_data_key
from ehr_client.errors import DecryptionError
from ehr_client.package import parse_header
from tests.batch.conftest import observation


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
