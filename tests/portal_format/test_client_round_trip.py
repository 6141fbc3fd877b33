"""(c) Records written by ehr_client's real write path on a real chain, opened by format.js; a key
share made by format.js read by ehr_client's real read path (on-chain grant, access request)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import umbral_pre

from ehr_client.client import EHRClient, Identity
from ehr_client.client.model import RecordInfo
from ehr_client.keyshare import KeyShare
from ehr_client.package import parse_header
from ehr_client.records import Scope, canonicalize
from tests.constants import DAY
from tests.portal_format.node import run_node

LAB = int(Scope.LAB)


def _expected(info: RecordInfo, *, anchored: bool = True) -> dict[str, Any]:
    out = {"record_id": info.record_id.hex(), "patient": info.patient, "scope": str(info.scope), "author": info.author}
    return out | ({"content_hash": info.content_hash.hex()} if anchored else {})


def _open(blob: bytes, reader: Identity, info: RecordInfo, **extra: Any) -> dict[str, Any]:
    return {"op": "open_package", "package": blob.hex(), "reader": reader.address,
            "x25519_secrets": {str(v): k.hex() for v, k in reader.x25519.items()}, "expected": _expected(info), **extra}


def _lab_writes(people: dict[str, EHRClient], resource: dict[str, Any]) -> RecordInfo:
    patient, lab = people["patient"], people["lab"]
    patient.grant(lab.address, LAB, access="amend", expires_at=patient.chain.now() + DAY, share_keys=False)
    return patient.get_record(lab.add_record(patient.address, resource).record_id)


def test_js_opens_a_record_the_client_wrote_and_the_client_reads_with_a_js_key_share(
    people: dict[str, EHRClient], suite: Any, ids: dict[str, Identity], store: Any, tmp_path: Path,
    observation: dict[str, Any],
) -> None:
    patient, doctor = people["patient"], people["doctor"]
    umbral_secret = bytes(umbral_pre.SecretKey.random().to_be_bytes())
    with_umbral = Identity.from_private_keys(ids["patient"].account.key, ids["patient"].x25519, {1: umbral_secret})
    EHRClient(suite, store, with_umbral, state_dir=tmp_path / "state" / "patient-umbral").publish_umbral_key()
    info = _lab_writes(people, observation)
    blob = patient.fetch_verified(info, doing="read")
    header, _ = parse_header(blob)
    assert header.umbral is not None

    parsed, as_patient, as_lab = run_node([{"op": "parse_package", "package": blob.hex()},
                                           _open(blob, ids["patient"], info), _open(blob, ids["lab"], info)])
    assert parsed["format"] == 4 and parsed["version"] == "1" and parsed["media_type"] == "application/fhir+json"
    assert parsed["umbral"]["capsule"] == header.umbral.capsule.hex()
    assert as_patient["ok"] and as_lab["ok"], (as_patient, as_lab)
    assert bytes.fromhex(as_patient["plaintext"]) == canonicalize(observation)
    assert as_patient["data_key"] == as_lab["data_key"]
    data_key = bytes.fromhex(as_patient["data_key"])
    binding = info.binding(header.version)
    assert header.umbral.open_original(umbral_secret, info.record_id, header.version, binding.context) == data_key

    key_version, doctor_public = patient.encryption_key_of(doctor.address)
    [made] = run_node([{"op": "make_keyshare", "patient": patient.address, "grantee": doctor.address,
                        "public": doctor_public.hex(), "key_version": key_version,
                        "entries": [{"binding": {**_expected(info, anchored=False), "version": parsed["version"]},
                                     "data_key": data_key.hex()}]}])
    assert made["ok"], made
    share_cid = store.put(made["share"].encode())
    patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + DAY, share_keys=False)
    read = doctor.read_record(info.record_id, key_share=share_cid)
    assert read.data == canonicalize(observation)
    opened = [e for e in patient.audit_trail(patient.address) if e.event == "AccessRequested"]
    assert [e.actor for e in opened] == [doctor.address]  # the read was recorded on chain, as any read


def test_js_opens_with_a_key_share_the_client_made_and_refuses_a_relisted_blob(
    people: dict[str, EHRClient], ids: dict[str, Identity], store: Any, observation: dict[str, Any],
) -> None:
    patient, doctor = people["patient"], people["doctor"]
    first = _lab_writes(people, observation)
    second = _lab_writes(people, {**observation, "valueQuantity": {"value": 7.1, "unit": "mmol/L"}})
    grant = patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + DAY)
    assert grant.key_share is not None and grant.shared_records == 2
    share = store.get(grant.key_share)
    assert KeyShare.from_bytes(share).grantee == doctor.address
    blob = patient.fetch_verified(first, doing="read")
    binding = {**_expected(first, anchored=False), "version": "1"}
    doctor_secrets = {str(v): k.hex() for v, k in ids["doctor"].x25519.items()}
    key, relisted, replaced, stranger = run_node([
        {"op": "share_data_key", "share_hex": share.hex(), "reader": doctor.address, "x25519_secrets": doctor_secrets,
         "binding": binding},
        _open(blob, ids["patient"], second) | {"expected": _expected(second, anchored=False)},
        _open(blob, ids["patient"], second),
        _open(blob, ids["stranger"], first),
    ])
    assert key["ok"], key
    [with_share] = run_node([_open(blob, ids["doctor"], first, data_key=key["data_key"])])
    assert bytes.fromhex(with_share["plaintext"]) == canonicalize(observation)
    assert (relisted["ok"], relisted["error"]) == (False, "BindingError")  # first's bytes under second's identity
    assert (replaced["ok"], replaced["error"]) == (False, "IntegrityError")  # not the bytes second anchored
    assert (stranger["ok"], stranger["error"]) == (False, "KeyNotFoundError")
    assert all("plaintext" not in r for r in (relisted, replaced, stranger))
