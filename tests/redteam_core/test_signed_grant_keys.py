"""A signed grant (EIP-712, for a relayer) used to carry its key share: `sign_grant` sealed the data keys of
every record in scope to the grantee and stores the share before anything is on chain. The patient
changes her mind and voids the signature (`cancelSignatures`) before it is relayed; the chain then
refuses the grant, yet the grantee already holds the keys. With the CIDs the chain lists publicly and
the store's bytes, the grantee opens the records offline: no grant ever in force, no access request,
nothing in "who opened my record"."""

from __future__ import annotations

from typing import Any

import pytest

from ehr_client.client import EHRClient
from ehr_client.errors import AccessDenied, ConsentRefused, EHRError, KeyNotFound
from ehr_client.keyshare import KeyShare
from ehr_client.records import Scope
from tests.constants import DAY
from tests.redteam_core.offline import open_offline

LAB = int(Scope.LAB)




def test_a_signed_grant_voided_before_relay_hands_over_no_keys(people: dict[str, EHRClient],
                                                               observation: dict[str, Any]) -> None:
    patient, doctor = people["patient"], people["doctor"]
    written = patient.add_record(patient.address, observation)
    now = patient.chain.now()
    signed = patient.sign_grant(doctor.address, LAB, expires_at=now + DAY, deadline=now + 600)
    assert signed.key_share is None  # no keys travel with a signature that may yet be voided
    assert patient.share_keys(doctor.address, LAB) == (None, 0)  # nor can they be sealed before it is in force

    # The patient changes her mind before anyone relays it.
    cancel = patient.chain.consent.functions.cancelSignatures(doctor.address)
    patient.chain.transact(patient.identity.account, cancel, action="cancel signatures")
    with pytest.raises(ConsentRefused):
        doctor.relay_grant(signed)
    grant = patient.chain.call(patient.chain.consent.functions.getGrant(patient.address, doctor.address),
                               action="read grant")
    assert grant[2] == 0  # no access in force, ever
    with pytest.raises(AccessDenied):
        doctor.read_record(written.record_id, key_share=signed.key_share)

    # The grantee's own code: the listing is public, the bytes are in the store, the share was handed over.
    info = {r.record_id: r for r in doctor.list_records(patient.address)}[written.record_id]
    blob = doctor.store.get(info.cid)
    for cid, _ in patient.store.blobs():  # every key share in the store: none names the doctor
        data = patient.store.get(cid)
        try:
            share = KeyShare.from_bytes(data)
        except EHRError:
            continue
        if share.grantee == doctor.address:
            with pytest.raises(KeyNotFound):
                open_offline(doctor, info, blob, data)
