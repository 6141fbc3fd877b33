"""Attacks of this round that the running system turned away (kept as regression tests)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ehr_client.chain.eip712 import revoke_typed_data, sign_typed_data
from ehr_client.cli._context import AppContext
from ehr_client.cli._settings import Settings
from ehr_client.client import EHRClient
from ehr_client.records import Scope
from ehr_client.sharing.audited import AuditedSharing
from ehr_client.sharing.remote import CustodianSet
from tests.cli.conftest import NETWORK, PASSWORD, Cli
from tests.portal.conftest import Portal
from tests.portal_audited.conftest import CustodianProcess, fragments_at
from tests.redteam_portal2.observations import fresh_observation
from tests.redteam_portal3.shares import DAY

RECORDS = 120  # about 45 records' fragments fill one custodian's 64 KiB body


def _signed_revocation(patient: EHRClient, grantee: str, nonce: int) -> dict[str, Any]:
    typed = revoke_typed_data(patient.consent_domain(), patient=patient.address, grantee=grantee, nonce=nonce,
                              signature_valid_until=patient.chain.now() + DAY)
    return {"typedData": typed, "signature": "0x" + sign_typed_data(patient.identity.account.key, typed).hex()}


def _pair(patient: EHRClient, grantee: str) -> tuple[int, int]:
    """(access, nonce) of the pair now."""
    _, _, access, nonce, _, _ = patient.chain.call(patient.chain.consent.functions.getGrant(patient.address, grantee),
                                                   action="read grant")
    return int(access), int(nonce)


def test_a_revocation_signed_ahead_of_the_pair_is_refused_and_moves_nothing(
        portal: Portal, client_of: Callable[[str], EHRClient]) -> None:
    """A revocation signed on a history a node lost (nonces ahead of the pair's now), relayed by a
    stranger through the portal: after a rollback the chain hands those nonces out again, so it must
    not void what the patient decides now."""
    patient, doctor = client_of("patient"), client_of("doctor")
    patient.grant(doctor.address, int(Scope.LAB), expires_at=patient.chain.now() + 30 * DAY, share_keys=False)
    before = _pair(patient, doctor.address)
    for ahead in (1, 3, 2**40 - 1 - before[1]):
        refused = portal.post("/api/relay", json=_signed_revocation(patient, doctor.address, before[1] + ahead))
        assert refused.status_code in (400, 403, 409), refused.text
        assert _pair(patient, doctor.address) == before


def test_a_grant_over_more_records_than_one_deposit_holds_reaches_every_custodian_whole(
        running: list[CustodianProcess], cli: Cli, observation: Path, client_of: Callable[[str], EHRClient],
        tmp_path: Path, home: Path, anvil: Any) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    for _ in range(RECORDS):
        fresh_observation(observation, folder)
    cli("record", "import", str(folder), "--patient", "patient", wallet="lab")
    (tmp_path / "password").write_text(PASSWORD)
    context = AppContext(Settings(network=NETWORK, rpc=anvil.rpc_url, home=home, wallet="patient",
                                  password_file=tmp_path / "password"))
    try:
        patient, doctor = context.client(), client_of("doctor")  # a fresh keystore load: with the Umbral key
        mine = {info.record_id for info in patient.list_records(patient.address) if info.batch is not None}
        sharing = AuditedSharing(patient, CustodianSet.connect(patient.chain, [c.url for c in running]), threshold=2)
        patient.grant(doctor.address, int(Scope.LAB), expires_at=patient.chain.now() + 30 * DAY, share_keys=False)
        imported = [r for r in mine if all(fragments_at(c, home, r) == 0 for c in running)]
        assert len(imported) >= RECORDS

        delegation = sharing.delegate(doctor.address, record_ids=imported)  # far past one 64 KiB body per custodian
        assert (len(delegation.record_ids), delegation.unavailable, delegation.skipped) == (len(imported), (), ())
        assert [sum(fragments_at(c, home, r) for r in imported) for c in running] == [len(imported)] * len(running)
    finally:
        context.close()
