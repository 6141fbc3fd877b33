"""A node rollback loses a grant and its revocation, both relayed for the patient; after the relayer's
`recover`, the grantee relays the patient's old signed grant."""

from __future__ import annotations

from ehr_client.batch.recover import recover
from ehr_client.chain.types import Access
from ehr_client.client import EHRClient
from ehr_client.errors import EHRError
from ehr_client.records import Scope

DAY = 86400
LAB = int(Scope.LAB)


def _access(patient: EHRClient, grantee: str) -> int:
    _, _, access, *_ = patient.chain.call(patient.chain.consent.functions.getGrant(patient.address, grantee),
                                          action="read grant")
    return int(access)


def test_a_relayed_revocation_lost_in_a_rollback_cannot_be_undone_by_the_grantee(
        people: dict[str, EHRClient]) -> None:
    patient, doctor, relayer = people["patient"], people["doctor"], people["hospital"]
    chain = patient.chain
    saved = str(chain.w3.provider.make_request("evm_snapshot", [])["result"])  # type: ignore[arg-type]

    grant = patient.sign_grant(doctor.address, LAB, expires_at=chain.now() + 30 * DAY,
                               deadline=chain.now() + DAY, share_keys=False)
    relayer.relay_grant(grant)
    revocation = patient.sign_revoke(doctor.address, deadline=chain.now() + DAY)
    relayer.relay_revoke(revocation)
    assert _access(patient, doctor.address) == int(Access.NONE)

    chain.w3.provider.make_request("evm_revert", [saved])  # type: ignore[arg-type]  # the node loses both

    outcomes = {(r.kind, r.outcome) for r in recover(relayer)}
    # The relayer's recover relays the lost revocation again, although no grant is in force: the
    # rollback took the pair's nonce back, so the grant the patient signed before it verifies again.
    assert ("revoke", "re-applied") in outcomes, outcomes

    # The grantee keeps the signed grant it was handed and sends it again (any account may relay).
    try:
        doctor.relay_grant(grant)
    except EHRError:
        pass
    assert _access(patient, doctor.address) == int(Access.NONE), "the revoked grant is in force again"
