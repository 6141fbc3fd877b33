"""Outside review A7: a lab-only grantee wrote a lab record carrying the patient's mental-health
capsule, hoping her audited delegation would re-encrypt it to him. The patient opens every capsule
with her own key and checks it names the record it sits in before making fragments."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from ehr_client.chain.ids import record_id_of
from ehr_client.client.write import prepare
from ehr_client.package import PackageHeader, RecordBinding, parse_header
from ehr_client.records import Scope
from ehr_client.storage import cid_to_bytes
from tests.constants import DAY
from tests.custodian.conftest import Env, fragments

LAB, MENTAL = int(Scope.LAB), int(Scope.MENTAL_HEALTH)


def test_a_capsule_copied_into_another_record_is_never_delegated(env: Env, observation: dict[str, Any]) -> None:
    patient, lab = env.clients["patient"], env.clients["lab"]
    patient.grant(lab.address, LAB, access="amend", expires_at=env.chain.now() + DAY, share_keys=False)
    note = {"resourceType": "Condition", "code": {"text": "MENTAL-HEALTH SECRET"},
            "subject": {"reference": "Patient/example"}}
    mental = patient.add_record(patient.address, note, scope=MENTAL)
    mental_header, _ = parse_header(env.store.get(mental.cid))
    assert mental_header.umbral is not None

    # The lab writes an honest-looking lab record, then swaps in the mental-health capsule.
    salt = os.urandom(32)
    decoy_id = record_id_of(lab.address, salt)
    prepared = prepare(observation)
    binding = RecordBinding.of(decoy_id, 1, patient.address, LAB, lab.address)
    honest_cid, _ = lab.writer.seal(binding, prepared.media_type, prepared.source())
    honest = env.store.get(honest_cid)
    header, offset = parse_header(honest)
    forged = PackageHeader(header.version, header.media_type, header.wraps, mental_header.umbral,
                           header.binding).to_bytes() + honest[offset:]
    cid = env.store.put(forged)
    env.chain.transact(lab.identity.account, env.chain.records.functions.addRecord(
        salt, patient.address, hashlib.sha256(forged).digest(), LAB, cid_to_bytes(cid)), action="decoy")

    delegation = env.sharing("patient").grant(lab.address, LAB, expires_at=env.chain.now() + DAY)
    assert decoy_id in delegation.skipped and decoy_id not in delegation.record_ids
    assert fragments(env, decoy_id) == [0, 0, 0] and fragments(env, mental.record_id) == [0, 0, 0]
