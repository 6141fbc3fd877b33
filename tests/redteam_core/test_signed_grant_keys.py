"""A signed grant (EIP-712, for a relayer) carries its key share: `sign_grant` seals the data keys of
every record in scope to the grantee and stores the share before anything is on chain. The patient
changes her mind and voids the signature (`cancelSignatures`) before it is relayed; the chain then
refuses the grant, yet the grantee already holds the keys. With the CIDs the chain lists publicly and
the store's bytes, the grantee opens the records offline: no grant ever in force, no access request,
nothing in "who opened my record"."""

from __future__ import annotations

from typing import Any

import pytest

from ehr_client.client import EHRClient
from ehr_client.client.keysource import ShareIndex, check_header
from ehr_client.client.model import RecordInfo
from ehr_client.crypto import iter_decrypt
from ehr_client.errors import AccessDenied, BlobNotFound, ConsentRefused, KeyNotFound
from ehr_client.keyshare import KeyShare
from ehr_client.package import parse_header
from ehr_client.records import Scope
from tests.constants import DAY

LAB = int(Scope.LAB)


def _open_offline(reader: EHRClient, info: RecordInfo, blob: bytes, share: bytes) -> bytes:
    """What the grantee's own code does: no chain check, no access request."""
    header, offset = parse_header(blob)
    binding = check_header(info, header)
    key = ShareIndex.of(KeyShare.from_bytes(share)).data_key(reader.identity, info, binding)
    return b"".join(iter_decrypt(memoryview(blob)[offset:], key, record_id=info.record_id, version=header.version,
                                 context=binding.context))


@pytest.mark.xfail(strict=True, reason="finding: sign_grant stores the key share (data keys sealed to the grantee) "
                   "before the grant is relayed; a voided, never-relayed grant still hands the grantee every key")
def test_a_signed_grant_voided_before_relay_hands_over_no_keys(people: dict[str, EHRClient],
                                                               observation: dict[str, Any]) -> None:
    patient, doctor = people["patient"], people["doctor"]
    written = patient.add_record(patient.address, observation)
    now = patient.chain.now()
    signed = patient.sign_grant(doctor.address, LAB, expires_at=now + DAY, deadline=now + 600)
    assert signed.key_share is not None

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
    try:
        share = doctor.store.get(signed.key_share)
    except BlobNotFound:
        return
    with pytest.raises(KeyNotFound):
        _open_offline(doctor, info, blob, share)
