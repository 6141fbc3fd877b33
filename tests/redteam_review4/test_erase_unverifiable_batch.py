"""Two paths, one erasure: `AuditedSharing.erase` re-issues key shares without every version id the
chain states, but the portal's /api/erase re-issues only without the versions that verify. A batched
record whose batch manifest no longer verifies when /api/erase runs (the stored manifest damaged, and
a portal started since, so nothing verified is remembered) is tombstoned on chain, yet the key share
holding its data key stays served: re-issuing needs only the id, which the chain states."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ehr_client.client import EHRClient
from ehr_client.keyshare import KeyShare
from ehr_client.records import Scope
from ehr_client.storage import LocalStore

from tests.cli.conftest import Cli, cli_env
from tests.portal.conftest import Portal, start_portal, stop_portal
from tests.portal_audited.test_batched_records import _import_batch
from tests.blob_files import overwrite_blob
from tests.redteam_portal3.shares import DAY, store_page_share


def test_an_erased_batched_records_key_share_is_reissued_when_its_manifest_no_longer_verifies(
        portal: Portal, cli: Cli, client_of: Callable[[str], EHRClient], tmp_path: Path, home: Path,
        anvil: Any) -> None:
    patient, doctor = client_of("patient"), client_of("doctor")
    erased, kept = (bytes.fromhex(r[2:]) for r in _import_batch(cli, patient.address, tmp_path, (6.1, 6.2)))
    patient.grant(doctor.address, int(Scope.LAB), expires_at=patient.chain.now() + 30 * DAY, share_keys=False)
    share = store_page_share(portal, patient, doctor.address, [erased, kept])

    info = patient.get_record(erased)
    assert info.batch is not None
    patient.tombstone(info)
    store, manifest = LocalStore(home / "store"), info.batch.manifest_cid
    intact = store.get(manifest)
    damaged = bytearray(intact)
    damaged[len(damaged) // 2] ^= 0x01
    overwrite_blob(store, manifest, bytes(damaged))
    (tmp_path / "fresh").mkdir()
    fresh = start_portal(home, cli_env(home, anvil.rpc_url), tmp_path / "fresh")  # e.g. after a restart
    try:
        answer = fresh.post(f"/api/erase/0x{erased.hex()}")
        served = fresh.get(f"/api/blobs/{share}")
    finally:
        stop_portal(fresh.process)
        overwrite_blob(store, manifest, intact)

    holds = served.status_code == 200 and any(e.record_id == erased for e in KeyShare.from_bytes(served.content).entries)
    assert not holds, (f"the erased record's key is still served in {share} "
                       f"(/api/erase answered {answer.status_code}: {answer.text[:300]})")
