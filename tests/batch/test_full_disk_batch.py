"""A disk that fills up at each write step of a batch: a typed `StorageFull` (CLI exit code 5),
nothing half-written, and once space is back the same write lands every record exactly once.

A full tmpfs lets an append through while the file's last page has room, so the appends to the
existing batch journal (`stored`, `sealed`) and to the batch's pack (every blob after the first)
are failed by a file-size limit instead (EFBIG from the kernel), which the client treats as a
full disk."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ehr_client.batch import BatchItem, BatchWriter
from ehr_client.batch import journal as batch_journal
from ehr_client.batch.gc import collect
from ehr_client.chain.client import ChainClient
from ehr_client.cli._errors import EXIT_DOWN, exit_code
from ehr_client.client import EHRClient, Identity
from ehr_client.errors import StorageFull
from ehr_client.records import canonicalize
from ehr_client.storage import LocalStore
from ehr_client.storage._packs import INDEX_NAME, PACK_DIR
from tests.batch.conftest import observation
from tests.small_disk import SmallDisk, no_growth_during, small_disk  # noqa: F401  (fixture)

# step: (what fills the disk just before it is called, which call, anchored on chain when it fails)
STEPS: dict[str, tuple[str, int, bool]] = {
    "batch journal created": ("journal.opened", 1, False),
    "first blob": ("store.put", 1, False),
    "third blob": ("store.put", 3, False),
    "manifest": ("store.put", 4, False),
    "anchored log": ("append_line", 1, True),
    "batches log": ("append_line", 2, True),
    "stored line": ("journal.stored", 2, False),
    "sealed line": ("journal.sealed", 1, False),
}


@pytest.fixture
def store(small_disk: SmallDisk) -> LocalStore:
    return LocalStore(small_disk.root / "store")


@pytest.fixture
def client_for(suite: ChainClient, ids: dict[str, Identity], store: LocalStore,
               small_disk: SmallDisk) -> Callable[..., EHRClient]:
    def make(name: str) -> EHRClient:
        return EHRClient(suite, store, ids[name], state_dir=small_disk.root / "state" / name)

    return make


def _items(patient: str) -> list[BatchItem]:
    return [BatchItem(patient, observation(i)) for i in range(3)]


def _batches(client: EHRClient) -> list[Any]:
    return client.chain.get_events("RecordRegistry", "BatchAnchored", filters={"author": client.address})


@pytest.mark.parametrize("step", STEPS)
def test_a_batch_on_a_full_disk_fails_typed_and_lands_once_when_space_returns(
    step: str, people: dict[str, EHRClient], writer_lab: EHRClient, suite: ChainClient, store: LocalStore,
    small_disk: SmallDisk, monkeypatch: pytest.MonkeyPatch,
) -> None:
    patient = people["patient"]
    writer = BatchWriter(writer_lab, batch_size=8)
    target, call, anchored = STEPS[step]
    owner: Any = {"journal.opened": writer.journal, "store.put": store, "append_line": batch_journal,
                  "journal.stored": writer.journal, "journal.sealed": writer.journal}[target]
    if target in ("journal.stored", "journal.sealed"):
        no_growth_during(owner, target.split(".")[-1], writer.journal.path, monkeypatch, call=call)
    elif target == "store.put" and call > 1:  # an append to the batch's pack, larger than the pack index
        no_growth_during(store, "put", store.root / PACK_DIR / INDEX_NAME, monkeypatch, call=call)
    else:
        small_disk.full_before(owner, target.split(".")[-1], monkeypatch, call=call)

    with pytest.raises(StorageFull, match="disk full") as failed:
        writer.write(_items(patient.address))

    assert exit_code(failed.value) == EXIT_DOWN
    assert small_disk.leftovers() == []  # no temporary file, no torn journal line
    assert len(_batches(writer_lab)) == (1 if anchored else 0)
    monkeypatch.undo()
    small_disk.free()

    summary = writer.write(_items(patient.address))  # the user runs the same import again

    located = patient.list_records(patient.address)
    assert sorted(r.record_id for r in located) == sorted(summary.record_ids) and len(located) == 3
    assert len(_batches(writer_lab)) == 1  # one anchor, never two
    assert patient.read_record(summary.record_ids[2]).data == canonicalize(observation(2))
    assert writer.pending() == [] and not writer.journal.path.exists()
    assert writer.write(_items(patient.address)).skipped == 3  # and a third run writes nothing
    collect(suite, store, [writer_lab.state_dir, patient.state_dir], grace=0, delete=True)
    manifests = {str(r.batch.manifest_cid) for r in located if r.batch}
    assert {str(cid) for cid, _ in store.blobs()} == {str(r.cid) for r in located} | manifests
