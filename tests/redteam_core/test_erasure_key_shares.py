"""Erasure is crypto-shredding: "destroy every key share" (DESIGN). A grant with key sharing stores a
key share (the record's data key sealed to the grantee) in the blob store; `erase` destroys custodian
fragments and unpins the ciphertext, but the key share stays. A grantee who kept the ciphertext (any
reader or IPFS peer has it) opens the erased record offline with the store's own key share."""

from __future__ import annotations

from typing import Any

import pytest

from ehr_client.client import EHRClient
from ehr_client.errors import BlobNotFound, KeyNotFound, RecordErased
from ehr_client.records import Scope, canonicalize
from ehr_client.sharing.audited import AuditedSharing
from ehr_client.sharing.remote import CustodianSet
from tests.constants import DAY
from tests.redteam_core.offline import open_offline

LAB = int(Scope.LAB)




def test_erasure_destroys_the_key_shares_that_hold_the_record_s_data_key(people: dict[str, EHRClient],
                                                                         observation: dict[str, Any]) -> None:
    patient, doctor = people["patient"], people["doctor"]
    written = patient.add_record(patient.address, observation)
    grant = patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + DAY)
    assert grant.key_share is not None and grant.shared_records == 1
    assert doctor.read_record(written.record_id, key_share=grant.key_share).data == canonicalize(observation)
    kept_ciphertext = doctor.store.get(written.cid)  # the grantee (or any IPFS peer) keeps the bytes it fetched

    erasure = AuditedSharing(patient, CustodianSet.connect(patient.chain, [])).erase(written.record_id)

    assert erasure.record_ids == (written.record_id,) and not patient.store.has(written.cid)
    with pytest.raises(RecordErased):
        doctor.read_record(written.record_id, key_share=grant.key_share)
    erased = patient.get_record(written.record_id)
    assert erased.status == "tombstoned"
    try:
        share = doctor.store.get(grant.key_share)
    except BlobNotFound:
        return  # shredded: nothing left to open the kept bytes with
    with pytest.raises(KeyNotFound):
        open_offline(doctor, erased, kept_ciphertext, share)
