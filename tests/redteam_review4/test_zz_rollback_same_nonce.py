"""Named to run last: it rolls the world's node back (evm_snapshot / evm_revert), as a dev node
killed before it saved its state does, and leaves the doctor's grant decided by this test.

After the rollback the patient decides as often as the lost history did, so the pair's nonce is
back at the lost revocation's: the relayer's recover cannot tell her new decisions from the lost
ones and relays the old revocation over her newest grant."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ehr_client.client import EHRClient
from ehr_client.records import Scope
from tests.cli.conftest import Cli
from tests.redteam_portal3.shares import DAY
from tests.redteam_portal3.test_zz_rollback_revocation import _grant_of, _node


def test_a_relayers_recover_does_not_revoke_the_grant_the_patient_made_after_the_rollback_at_the_same_nonce(
        cli: Cli, anvil: Any, client_of: Callable[[str], EHRClient]) -> None:
    patient, doctor, hospital = client_of("patient"), client_of("doctor"), client_of("hospital")
    lab = int(Scope.LAB)
    patient.grant(doctor.address, lab, expires_at=patient.chain.now() + 30 * DAY, share_keys=False)
    saved = _node(anvil.rpc_url, "evm_snapshot", [])

    # Lost history: two term changes, then a signed revocation the hospital relays and logs.
    patient.grant(doctor.address, lab, expires_at=patient.chain.now() + 20 * DAY, share_keys=False)
    patient.grant(doctor.address, lab, expires_at=patient.chain.now() + 10 * DAY, share_keys=False)
    revocation = patient.sign_revoke(doctor.address, deadline=patient.chain.now() + 7 * DAY)
    hospital.relay_revoke(revocation)
    assert _grant_of(patient, patient.address, doctor.address)[0] == 0

    assert _node(anvil.rpc_url, "evm_revert", [saved]) is True

    # After the rollback the patient changes the terms twice with her own transactions: 45, then 60 days.
    patient.grant(doctor.address, lab, expires_at=patient.chain.now() + 45 * DAY, share_keys=False)
    newest_end = patient.chain.now() + 60 * DAY
    patient.grant(doctor.address, lab, expires_at=newest_end, share_keys=False)
    access, expires, nonce, _ = _grant_of(patient, patient.address, doctor.address)
    assert (access, expires) == (1, newest_end)
    assert nonce == revocation.message.nonce  # her two new decisions brought the pair back to the lost nonce

    recovered = cli("record", "recover", "--json", wallet="hospital", expect=None)
    access, expires, _, _ = _grant_of(patient, patient.address, doctor.address)
    assert (access, expires) == (1, newest_end), (
        f"the patient's newest grant was revoked by the relayer's recover: {json.dumps(recovered.stdout)[:400]}")
