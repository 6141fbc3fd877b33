"""The record-model breaks of the outside review, each acted out by the attacker with raw contract calls
against a real Anvil, and what must hold afterwards: one record model, bound end to end."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import pytest

from ehr_client.batch import BatchItem, BatchWriter
from ehr_client.chain.ids import record_id_of
from ehr_client.client import EHRClient, Identity
from ehr_client.client.manifest import BatchLeaf, build_manifest
from ehr_client.client.write import prepare
from ehr_client.crypto import generate_x25519_keypair
from ehr_client.errors import AccessDenied, IntegrityError, RecordErased
from ehr_client.keyshare import KeyShare
from ehr_client.records import Scope
from ehr_client.storage import Cid, cid_to_bytes
from tests.constants import DAY

LAB, MENTAL = int(Scope.LAB), int(Scope.MENTAL_HEALTH)
DIAGNOSIS = "Major depressive disorder, recurrent, severe"


def _mental_note() -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                       "code": "active"}]},
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "74732009", "display": "Mental disorder"}]}],
        "code": {"text": DIAGNOSIS},
        "subject": {"reference": "Patient/example"},
    }


def _amend_grant(patient: EHRClient, author: EHRClient, scopes: int) -> None:
    patient.grant(author.address, scopes, access="amend", expires_at=patient.chain.now() + DAY, share_keys=False)


def _relist(attacker: EHRClient, patient: str, victims: list[tuple[bytes, Cid]], scope: int) -> bytes:
    """The attacker anchors his own batch listing other records' blobs (hash, CID) under `scope`,
    with a manifest that verifies, by raw contract calls."""
    key = os.urandom(32)
    manifest = build_manifest(attacker.address, patient, key, [BatchLeaf(scope, h, c) for h, c in victims])
    data = manifest.to_bytes()
    cid = attacker.store.put(data)
    fn = attacker.chain.records.functions.anchorBatch(key, patient, manifest.scopes, manifest.root,
                                                      len(manifest.leaves), hashlib.sha256(data).digest(),
                                                      cid_to_bytes(cid))
    attacker.chain.transact(attacker.identity.account, fn, action="relist")
    return manifest.record_id(0)


@pytest.fixture
def mental_record(people: dict[str, EHRClient]) -> Any:
    patient, hospital = people["patient"], people["hospital"]
    _amend_grant(patient, hospital, MENTAL)
    return hospital.add_record(patient.address, _mental_note(), scope=MENTAL)


def test_relisted_mental_record_never_leaks_through_a_lab_grant(people, mental_record, observation):
    """Break 1: a lab re-lists the mental-health blob as LAB in its own batch; the patient's LAB-only
    grant with key sharing must not seal that key, and the lab cannot decrypt the re-listing."""
    patient, lab = people["patient"], people["lab"]
    _amend_grant(patient, lab, LAB)
    lab_result = lab.add_record(patient.address, observation)
    relisted = _relist(lab, patient.address, [(mental_record.content_hash, mental_record.cid)], LAB)

    listed = {r.record_id: r for r in patient.list_records(patient.address)}
    assert listed[relisted].scope == LAB and listed[relisted].author == lab.address
    assert listed[mental_record.record_id].scope == MENTAL

    grant = patient.grant(lab.address, LAB, expires_at=patient.chain.now() + DAY)
    share = KeyShare.from_bytes(patient.store.get(grant.key_share))
    assert {e.record_id for e in share.entries} == {lab_result.record_id}
    assert grant.shared_records == 1
    assert [s.what for s in grant.skipped] == [f"record 0x{relisted.hex()}"]
    assert "re-listed" in grant.skipped[0].reason

    # The lab's own read of its re-listing is refused before any decryption.
    with pytest.raises(IntegrityError, match="re-listed"):
        lab.read_record(relisted, key_share=grant.key_share)
    with pytest.raises(AccessDenied):
        lab.read_record(mental_record.record_id, key_share=grant.key_share)
    assert DIAGNOSIS.encode() not in patient.store.get(grant.key_share)


def test_unauthorised_member_cannot_anchor_a_batch_for_a_patient(people, mental_record):
    """A provider with no grant from the patient cannot list anything as hers."""
    with pytest.raises(AccessDenied):
        _relist(people["doctor"], people["patient"].address,
                [(mental_record.content_hash, mental_record.cid)], LAB)


def test_one_forged_batch_breaks_nobodys_grant_history_or_listing(people, observation):
    """Break 3: a lab with a grant anchors a batch whose manifest matches nothing; the patient's
    grant with key sharing, signed grant and history still work, and the batch is reported."""
    patient, lab, doctor = people["patient"], people["lab"], people["doctor"]
    _amend_grant(patient, lab, LAB)
    good = lab.add_record(patient.address, observation)
    key = os.urandom(32)
    junk = lab.store.put(b'{"not": "a manifest"}')
    fn = lab.chain.records.functions.anchorBatch(key, patient.address, LAB, os.urandom(32), 3,
                                                 hashlib.sha256(b"other").digest(), cid_to_bytes(junk))
    lab.chain.transact(lab.identity.account, fn, action="forge")

    report = patient.list_records_report(patient.address)
    assert [r.record_id for r in report.records] == [good.record_id]
    assert len(report.skipped) == 1 and report.skipped[0].author == lab.address

    grant = patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + DAY)
    assert grant.shared_records == 1 and len(grant.skipped) == 1
    assert patient.share_keys(people["insurer"].address, LAB) == (None, 0)  # no grant in force for the insurer
    history = doctor.read_history(patient.address, scopes=LAB, key_share=grant.key_share)
    assert [r.info.record_id for r in history] == [good.record_id]


def test_a_retry_lands_as_the_same_record_and_a_front_runner_takes_nothing(people, observation):
    """Break 5: an attacker who copies a pending write's salt gets an id of his own; the write lands
    as the author's record, and writing it again reports that same record."""
    patient, lab, hospital = people["patient"], people["lab"], people["hospital"]
    _amend_grant(patient, lab, LAB)
    _amend_grant(patient, hospital, LAB)
    prepared = prepare(observation)
    fingerprint = lab.journal.fingerprint(bytes.fromhex(patient.address[2:]), LAB.to_bytes(8, "big"), b"",
                                          prepared.plain_hash)
    salt = lab.writer.salt(fingerprint)
    fn = hospital.chain.records.functions.addRecord(salt, patient.address, b"\x01" * 32, LAB, b"\x01\x55")
    hospital.chain.transact(hospital.identity.account, fn, action="front-run")

    first = lab.add_record(patient.address, observation)
    assert first.record_id == record_id_of(lab.address, salt) and first.tx is not None
    again = lab.add_record(patient.address, observation)
    assert again.record_id == first.record_id and again.tx is None and again.content_hash == first.content_hash
    mine = [r for r in patient.list_records(patient.address) if r.author == lab.address]
    assert [r.record_id for r in mine] == [first.record_id]


def test_patient_erases_a_batched_record_and_every_reader_is_refused(people, observation):
    """Break 2 end to end: nobody can squat a batched record; its patient tombstones it."""
    patient, lab, doctor = people["patient"], people["lab"], people["doctor"]
    _amend_grant(patient, lab, LAB)
    summary = BatchWriter(lab, batch_size=4).write([BatchItem(patient.address, observation)])
    record_id = summary.record_ids[0]
    grant = patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + DAY)
    assert doctor.read_record(record_id, key_share=grant.key_share).info.batched
    patient.tombstone(patient.get_record(record_id))
    assert patient.get_record(record_id).status == "tombstoned"
    for reader in (patient, doctor):
        with pytest.raises(RecordErased):
            reader.read_record(record_id, key_share=grant.key_share)


def test_batched_records_are_amended_verified_and_listed_like_single_ones(people, observation):
    patient, lab = people["patient"], people["lab"]
    _amend_grant(patient, lab, LAB)
    record_id = BatchWriter(lab).write([BatchItem(patient.address, observation)]).record_ids[0]
    assert lab.verify_record(record_id).ok
    amended = dict(observation, valueQuantity={"value": 6.1, "unit": "mmol/L"})
    newer = lab.amend_record(record_id, amended)
    versions = {r.record_id: r for r in patient.list_records(patient.address)}
    assert versions[record_id].status == "superseded" and versions[newer.record_id].previous_id == record_id
    assert patient.read_record(newer.record_id).resource()["valueQuantity"]["value"] == 6.1


def test_patient_reads_own_batched_records_when_key_labels_drifted(people, suite, store, tmp_path, observation):
    """Break 7b: the keystore's version labels differ from the chain's; every key version is tried."""
    patient, lab = people["patient"], people["lab"]
    _amend_grant(patient, lab, LAB)
    record_id = BatchWriter(lab).write([BatchItem(patient.address, observation)]).record_ids[0]
    own = patient.identity
    drifted = Identity(own.account, {1: generate_x25519_keypair().private_key, 2: own.x25519[1]}, own.umbral)
    reader = EHRClient(suite, store, drifted, state_dir=tmp_path / "drifted")
    assert reader.read_record(record_id).resource()["code"]["coding"][0]["code"] == "2345-7"


def test_the_ciphertext_is_bound_to_patient_scope_and_author(people, observation):
    """The header names the record's on-chain identity, and the envelope is sealed to all of it."""
    patient, lab = people["patient"], people["lab"]
    _amend_grant(patient, lab, LAB)
    written = lab.add_record(patient.address, observation)
    header = patient.read_header(written.cid)
    assert header.binding is not None
    assert header.binding.record_id == written.record_id
    assert header.binding.patient == bytes.fromhex(patient.address[2:])
    assert header.binding.author == bytes.fromhex(lab.address[2:]) and header.binding.scope == LAB
    assert json.dumps(observation).encode() not in patient.store.get(written.cid)
