"""A sibling of the page's finding, found by looking: the client's erasure followed the chain's
RecordAmended events, then read each successor through `get_record`, which refuses a version whose
anchored pointer is not a CID; it now goes by the chain's facts alone (`ehr_client.client.lineage`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ehr_client.chain.ids import record_id_of
from ehr_client.chain.types import Status
from ehr_client.client import EHRClient
from tests.cli.conftest import Cli
from tests.portal.conftest import Portal
from tests.portal_audited.conftest import CustodianProcess
from tests.redteam_portal3.shares import lab_results


def test_a_grantee_cannot_stop_the_patients_erasure_with_a_successor_that_is_not_a_cid(
        portal: Portal, running: list[CustodianProcess], cli: Cli, observation: Path,
        client_of: Callable[[str], EHRClient], tmp_path: Path) -> None:
    patient, lab = client_of("patient"), client_of("lab")  # the world's lab holds amend access to lab results
    (record,) = lab_results(cli, observation, tmp_path, 1)
    ciphertext = patient.get_record(record).cid
    salt = os.urandom(32)
    lab.chain.transact(lab.identity.account, lab.chain.records.functions.amendRecord(
        record, salt, os.urandom(32), b"not a CID"), action="amend record")

    urls = [arg for c in running for arg in ("--custodian", c.url)]
    for _ in range(2):  # an erasure that stopped is finished by running it again
        erased = cli("record", "erase", f"0x{record.hex()}", "--yes", *urls, wallet="patient", expect=None)
    hidden = record_id_of(lab.address, salt)
    status = int(lab.chain.call(lab.chain.records.functions.recordStatus(hidden), action="look up record"))
    assert erased.exit_code == 0, f"exit {erased.exit_code}: {erased.stdout[-300:]} {erased.stderr[-300:]}"
    assert status == int(Status.TOMBSTONED)
    assert portal.get(f"/api/blobs/{ciphertext}").status_code == 404, "the erased ciphertext is still stored"
