"""A disk that fills up at each step of a single write: a typed `StorageFull` (CLI exit code 5),
nothing half-written, and once space is back the same write lands exactly once, with no orphan."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ehr_client.batch.gc import collect
from ehr_client.chain.client import ChainClient
from ehr_client.cli._errors import EXIT_DOWN, exit_code
from ehr_client.client import EHRClient, Identity
from ehr_client.errors import StorageFull
from ehr_client.records import Scope, canonicalize
from ehr_client.storage import LocalStore
from tests.client.conftest import lab_result
from tests.constants import DAY
from tests.small_disk import SmallDisk, small_disk  # noqa: F401  (fixture)

LAB = int(Scope.LAB)
STEPS = {"blob store": ("store", "put"), "journal put": ("journal", "put"),
         "acknowledged log": ("journal", "acknowledge")}


@pytest.fixture
def store(small_disk: SmallDisk) -> LocalStore:
    return LocalStore(small_disk.root / "store")


@pytest.fixture
def client_for(suite: ChainClient, ids: dict[str, Identity], store: LocalStore,
               small_disk: SmallDisk) -> Callable[..., EHRClient]:
    def make(name: str) -> EHRClient:
        return EHRClient(suite, store, ids[name], state_dir=small_disk.root / "state" / name)

    return make


def _obs(step: str) -> dict[str, Any]:
    return lab_result(f"disk full at {step}", 6.1)


@pytest.mark.parametrize("step", STEPS)
def test_a_write_on_a_full_disk_fails_typed_and_lands_once_when_space_returns(
    step: str, people: dict[str, EHRClient], suite: ChainClient, store: LocalStore, small_disk: SmallDisk,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    patient, lab = people["patient"], people["lab"]
    patient.grant(lab.address, LAB, access="amend", expires_at=suite.now() + DAY, share_keys=False)
    owner, name = STEPS[step]
    small_disk.full_before(getattr(lab, owner), name, monkeypatch)

    with pytest.raises(StorageFull, match="disk full") as failed:
        lab.add_record(patient.address, _obs(step))

    assert exit_code(failed.value) == EXIT_DOWN
    assert small_disk.leftovers() == []  # no temporary file, no torn entry
    assert lab.journal.acknowledged() == []  # nothing acknowledged that the caller was told failed
    anchored = [r.record_id for r in patient.list_records(patient.address) if r.author == lab.address]
    assert len(anchored) == (1 if step == "acknowledged log" else 0)
    monkeypatch.undo()
    small_disk.free()

    again = lab.add_record(patient.address, _obs(step))  # the user runs the same write again

    mine = [r.record_id for r in patient.list_records(patient.address) if r.author == lab.address]
    assert mine == [again.record_id] and anchored in ([], mine)  # exactly one record: none lost, none doubled
    assert patient.read_record(again.record_id).data == canonicalize(_obs(step))
    assert [e.record_id for e in lab.journal.acknowledged()] == ["0x" + again.record_id.hex()]
    assert lab.journal.pending() == []
    collect(suite, store, [lab.state_dir, patient.state_dir], grace=0, delete=True)
    assert {str(cid) for cid, _ in store.blobs()} == {str(again.cid)}  # no orphan after gc
