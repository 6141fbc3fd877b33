"""Write throughput: the same records through the full write path, one transaction each versus batched.

Full path either way: FHIR validation, canonical bytes, AES-256-GCM under a fresh data key sealed to
patient and author, the blob into a LocalStore, and the anchor mined on the benchmark's Anvil.
Single: `EHRClient.add_record` per record, each blob a file fsynced on its own. Batched:
`BatchWriter.write` over all of them, a batch's blobs appended to one pack and made durable by one
barrier a batch (group commit), and for comparison the same batched write with every blob a file
fsynced on its own.

Both paths do the same local work per record, so batching can only remove the chain part:
ratio = (local + chain) / (local + anchors / records). The breakdown measures the local steps on
their own (FHIR validation, one 1 KB blob into a LocalStore, one journal line) to show that bound.
The single writes' floor in the same run: the cheapest mined transaction through the same
`ChainClient.transact` path, timed after every tenth write (`tx_floor_ms`, median).
"""

from __future__ import annotations

import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from resource import RUSAGE_SELF, getrusage

from bench._records import observation
from bench._world import DAY, World
from ehr_client.batch.journal import BatchJournal, OpenBatch, StoredEntry
from ehr_client.batch import BatchItem, BatchWriter
from ehr_client.client import EHRClient
from ehr_client.records import Scope, validate_fhir
from ehr_client.storage import BlobStore, Cid, LocalStore


@dataclass(frozen=True)
class ThroughputResult:
    records: int
    batch_size: int
    single_seconds: float
    batched_seconds: float
    batches: int
    local_ms: dict[str, float]
    batched_fsync_each_seconds: float
    tx_floor_ms: float = 0.0
    batched_cpu_ms: tuple[float, float] = (0.0, 0.0)  # (user, system) CPU of this process a batched record

    @property
    def batched_fsync_each_per_s(self) -> float:
        return self.records / self.batched_fsync_each_seconds

    @property
    def single_per_s(self) -> float:
        return self.records / self.single_seconds

    @property
    def batched_per_s(self) -> float:
        return self.records / self.batched_seconds


def measure(world: World, *, records: int, batch_size: int) -> ThroughputResult:
    patient = world.client("patient2", "throughput-single")
    patient.register_patient()
    patient.publish_key()
    lab_single = world.client("lab", "throughput-single")
    lab_batched = world.client("lab", "throughput-batched")
    patient.grant(lab_single.address, int(Scope.LAB), access="amend", expires_at=patient.chain.now() + DAY,
                  share_keys=False)
    resources = [observation(i) for i in range(records)]

    # The single writes' same-run floor: the cheapest transaction the suite accepts (the patient's
    # access request to its own record), mined through the same `ChainClient.transact` path, timed
    # after every tenth write and left out of the writes' time.
    first = lab_single.add_record(patient.address, observation(records + 2 * records))
    own_access = patient.chain.consent.functions.requestAccess(first.record_id)
    floor: list[float] = []
    single = 0.0
    for i, resource in enumerate(resources):
        start = time.perf_counter()
        lab_single.add_record(patient.address, resource)
        single += time.perf_counter() - start
        if i % 10 == 0:
            start = time.perf_counter()
            patient.chain.transact(patient.identity.account, own_access, action="request access")
            floor.append((time.perf_counter() - start) * 1000)

    # The baseline of the group commit, in the same run: the same batched write over other records
    # with a store that fsyncs every blob (and so every journal line), as before issue 18.
    per_blob = EHRClient(lab_batched.chain, _FsyncEachBlob(_local_root(lab_batched.store)), lab_batched.identity,
                         state_dir=lab_batched.state_dir)
    start = time.perf_counter()
    baseline = BatchWriter(per_blob, batch_size=batch_size).write(
        BatchItem(patient.address, observation(records + i)) for i in range(records))
    fsync_each = time.perf_counter() - start

    start, cpu = time.perf_counter(), getrusage(RUSAGE_SELF)
    summary = BatchWriter(lab_batched, batch_size=batch_size).write(
        BatchItem(patient.address, resource) for resource in resources)
    batched, spent = time.perf_counter() - start, getrusage(RUSAGE_SELF)
    batched_cpu = ((spent.ru_utime - cpu.ru_utime) * 1000 / records, (spent.ru_stime - cpu.ru_stime) * 1000 / records)
    if len(summary.record_ids) != records or len(baseline.record_ids) != records:
        raise RuntimeError(f"the batched writes anchored {len(summary.record_ids)} and {len(baseline.record_ids)} "
                           f"of {records} records")
    return ThroughputResult(records, batch_size, single, batched, len(summary.batches), local_steps(lab_single.address),
                            fsync_each, statistics.median(floor), batched_cpu)


class _FsyncEachBlob(LocalStore):
    """A LocalStore that never groups: every put is fsynced on its own."""

    @contextmanager
    def group_commit(self) -> Iterator[Callable[[], int] | None]:
        yield None


def _local_root(store: BlobStore) -> Path:
    if not isinstance(store, LocalStore):
        raise RuntimeError(f"the throughput benchmark measures the embedded store, not {store!r}")
    return store.root


def _per_call_ms(step: Callable[[int], object], count: int) -> float:
    start = time.perf_counter()
    for i in range(count):
        step(i)
    return (time.perf_counter() - start) * 1000 / count


def local_steps(author: str, count: int = 200) -> dict[str, float]:
    """Milliseconds per record of the local steps every write does, measured on their own."""
    resources = [observation(10_000 + i) for i in range(count)]
    with tempfile.TemporaryDirectory(prefix="ehr-bench-steps-", dir=os.environ.get("TMPDIR")) as tmp:
        store = LocalStore(Path(tmp) / "store")
        blobs = [secrets.token_bytes(1_300) for _ in range(count)]
        steps = {
            "fhir_validation": _per_call_ms(lambda i: validate_fhir(resources[i]), count),
            "store_1KB_blob_fsync": _per_call_ms(lambda i: store.put(blobs[i]), count),
        }
        grouped = [secrets.token_bytes(1_300) for _ in range(count)]
        with store.group_commit():  # what a batched write pays per blob: an append to the batch's pack
            steps["store_1KB_blob_grouped"] = _per_call_ms(lambda i: store.put(grouped[i]), count)
        with BatchJournal(Path(tmp) / "state", author).open() as (journal, state):
            batch = OpenBatch(secrets.token_bytes(32), author, int(Scope.LAB))
            journal.opened(state, batch)
            cid = Cid(store.put(b"x"))
            steps["journal_line_fsync"] = _per_call_ms(
                lambda i: journal.stored(batch, StoredEntry(f"{i:064x}", i, int(Scope.LAB), b"\x02" * 32, cid)), count)
    return {key: round(value, 3) for key, value in steps.items()}
