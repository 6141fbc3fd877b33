"""Attacks of this round that the running system turned away (kept as regression tests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ehr_client.chain.eip712 import revoke_typed_data, sign_typed_data
from ehr_client.client import EHRClient
from ehr_client.records import Scope
from tests.portal.conftest import Portal
from tests.redteam_portal3.shares import DAY

AHEAD = 256  # ConsentManager.MAX_REVOCATION_AHEAD


def _signed_revocation(patient: EHRClient, grantee: str, nonce: int) -> dict[str, Any]:
    typed = revoke_typed_data(patient.consent_domain(), patient=patient.address, grantee=grantee, nonce=nonce,
                              signature_valid_until=patient.chain.now() + DAY)
    return {"typedData": typed, "signature": "0x" + sign_typed_data(patient.identity.account.key, typed).hex()}


def _pair(patient: EHRClient, grantee: str) -> tuple[int, int]:
    """(access, nonce) of the pair now."""
    _, _, access, nonce, _, _ = patient.chain.call(patient.chain.consent.functions.getGrant(patient.address, grantee),
                                                   action="read grant")
    return int(access), int(nonce)


def test_a_revocation_signed_ahead_neither_voids_a_later_grant_again_nor_winds_the_nonce(
        portal: Portal, client_of: Callable[[str], EHRClient]) -> None:
    patient, doctor = client_of("patient"), client_of("doctor")
    patient.grant(doctor.address, int(Scope.LAB), expires_at=patient.chain.now() + 30 * DAY, share_keys=False)
    _, start = _pair(patient, doctor.address)

    # A revocation signed on a lost history, a few nonces ahead; a stranger relays it through the portal.
    ahead = _signed_revocation(patient, doctor.address, start + 3)
    first = portal.post("/api/relay", json=ahead)
    assert first.status_code == 200 and first.json()["alreadyRelayed"] is False, first.text
    assert _pair(patient, doctor.address) == (0, start + 4)

    # The patient grants again from the page: a signed grant at the pair's nonce, relayed by the portal.
    typed = patient.grant_document(doctor.address, int(Scope.LAB), expires_at=patient.chain.now() + 30 * DAY,
                                   deadline=patient.chain.now() + DAY)
    granted = portal.post("/api/relay", json={"typedData": typed, "keyShare": None,
                                              "signature": "0x" + sign_typed_data(patient.identity.account.key,
                                                                                  typed).hex()})
    assert granted.status_code == 200, granted.text
    access, nonce = _pair(patient, doctor.address)
    assert access != 0

    # The stranger relays the revocation again: the later grant outranks it.
    replayed = portal.post("/api/relay", json=ahead)
    assert replayed.status_code == 403 and replayed.json()["error"]["type"] == "ConsentRefused", replayed.text
    assert _pair(patient, doctor.address) == (access, nonce)

    # A phished revocation one past the bound cannot move the nonce at all.
    too_far = portal.post("/api/relay", json=_signed_revocation(patient, doctor.address, nonce + AHEAD + 1))
    assert too_far.status_code in (400, 403, 409), too_far.text
    assert _pair(patient, doctor.address) == (access, nonce)
