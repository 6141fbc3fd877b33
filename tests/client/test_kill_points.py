"""A writer killed at each step of a single write, then the same write run again: the ledger holds
exactly one record for it, readable, and after `gc` the store holds nothing unreferenced."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ehr_client.batch.gc import collect
from ehr_client.chain.client import ChainClient
from ehr_client.client import EHRClient, Identity
from ehr_client.records import Scope, canonicalize
from ehr_client.storage import LocalStore
from tests.client.conftest import lab_result
from tests.constants import DAY

REPO = Path(__file__).resolve().parents[2]
LAB = int(Scope.LAB)
STEPS = ["stored", "journaled", "sent", "mined", "acknowledged", "done"]


def _obs(step: str) -> dict[str, Any]:
    return lab_result(f"killed after {step}", 5.5)


@pytest.mark.parametrize("step", STEPS)
def test_a_write_killed_at_any_step_lands_once_and_leaves_no_orphan(
    step: str, people: dict[str, EHRClient], suite: ChainClient, ids: dict[str, Identity], store: LocalStore,
    tmp_path: Path,
) -> None:
    patient, lab = people["patient"], people["lab"]
    patient.grant(lab.address, LAB, access="amend", expires_at=suite.now() + DAY, share_keys=False)
    config = tmp_path / "killed-write.json"
    config.write_text(json.dumps({
        "rpc": suite.rpc_url, "deployment": suite.deployment.to_json(), "wallet": ids["lab"].account.key.hex(),
        "x25519": ids["lab"].x25519[1].hex(), "store": str(store.root), "state": str(lab.state_dir),
        "patient": patient.address, "resource": _obs(step), "step": step,
    }))
    done = subprocess.run([sys.executable, "-m", "tests.client._killed_write", str(config)], cwd=REPO,
                          capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    if step == "sent":
        suite.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]  # the node mines it anyway

    again = lab.add_record(patient.address, _obs(step))  # the user runs the same write again

    mine = [r for r in patient.list_records(patient.address) if r.author == lab.address]
    assert [r.record_id for r in mine] == [again.record_id]  # exactly one record: nothing lost, none doubled
    assert patient.read_record(again.record_id).data == canonicalize(_obs(step))
    assert [e.record_id for e in lab.journal.acknowledged()] == ["0x" + again.record_id.hex()]
    assert lab.journal.pending() == []
    collect(suite, store, [lab.state_dir, patient.state_dir], grace=0, delete=True)
    assert {str(cid) for cid, _ in store.blobs()} == {str(again.cid)}  # no orphan left after gc
