"""Named to run last: it rolls the world's node back (evm_snapshot / evm_revert) and moves its clock.

A relayer's recover replays the consents it relayed before a lost revocation, then the revocation.
When the revocation can no longer be relayed (its signature's validity has passed by the time the
relayer runs recover), the earlier grant has already been relayed again: the recover grants the
access the patient revoked, and the revocation can never be relayed after it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


from ehr_client.client import EHRClient
from ehr_client.records import Scope
from tests.cli.conftest import Cli
from tests.redteam_portal3.shares import DAY
from tests.redteam_review4.test_zz_rollback_same_nonce import _grant_of, _node


def test_a_relayers_recover_does_not_grant_what_the_patient_revoked_when_the_revocation_cannot_follow(
        cli: Cli, anvil: Any, client_of: Callable[[str], EHRClient]) -> None:
    patient, doctor, hospital = client_of("patient"), client_of("doctor"), client_of("hospital")
    lab = int(Scope.LAB)
    if _grant_of(patient, patient.address, doctor.address)[0] != 0:
        patient.revoke(doctor.address)
    saved = _node(anvil.rpc_url, "evm_snapshot", [])

    # The history the node is about to lose: a signed grant and, soon after, a signed revocation
    # valid for ten minutes, both relayed (and logged) by the hospital.
    now = patient.chain.now()
    hospital.relay_grant(patient.sign_grant(doctor.address, lab, expires_at=now + 30 * DAY, deadline=now + 7 * DAY,
                                            share_keys=False))
    hospital.relay_revoke(patient.sign_revoke(doctor.address, deadline=now + 600))
    assert _grant_of(patient, patient.address, doctor.address)[0] == 0

    assert _node(anvil.rpc_url, "evm_revert", [saved]) is True
    _node(anvil.rpc_url, "evm_increaseTime", [3600])  # the relayer runs recover an hour later
    _node(anvil.rpc_url, "evm_mine", [])
    assert _grant_of(patient, patient.address, doctor.address)[0] == 0  # the rollback left the doctor without access

    recovered = cli("record", "recover", "--json", wallet="hospital", expect=None)
    access = _grant_of(patient, patient.address, doctor.address)[0]
    assert access == 0, f"the relayer's recover granted what the patient revoked: {json.dumps(recovered.stdout)[:600]}"
