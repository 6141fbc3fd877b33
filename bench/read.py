"""Read latency: a full read of a 1 KB record by a grantee, many times.

Each read is `EHRClient.read_record`: the record's state and anchoring event, `canRead`, the
`requestAccess` transaction mined, the blob fetched, its sha256 checked against the chain, the key
share opened, decrypted, FHIR-validated. Also: the same call for a record anchored in a batch of 16
(`read_record` by id: locating its batch through the chain's batch index, the manifest fetched and
checked against the anchor, the proof checked off chain and again on chain by `requestBatchedAccess`).
Both are reads by record id, as a user does them: the locating is part of the figure.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench._records import observation
from bench._world import DAY, World
from ehr_client.batch import BatchItem, BatchWriter
from ehr_client.records import Scope


@dataclass(frozen=True)
class ReadResult:
    reads: int
    p50_ms: float
    p95_ms: float
    batched_reads: int
    batched_p50_ms: float
    batched_p95_ms: float


def _timed(read: Callable[[], object], count: int) -> tuple[float, float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        read()
        samples.append((time.perf_counter() - start) * 1000)
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return statistics.median(samples), cuts[94]


def measure(world: World, *, reads: int, batched_reads: int) -> ReadResult:
    patient, lab, doctor = (world.client(name, "read") for name in ("patient", "lab", "doctor"))
    patient.grant(lab.address, int(Scope.LAB), access="amend", expires_at=patient.chain.now() + DAY, share_keys=False)
    single = lab.add_record(patient.address, observation(5_000))
    batch = BatchWriter(lab).write(BatchItem(patient.address, observation(5_001 + i)) for i in range(16))
    patient.grant(doctor.address, int(Scope.LAB), expires_at=patient.chain.now() + DAY, share_keys=False)
    share, _ = patient.share_keys(doctor.address, int(Scope.LAB))

    expected = doctor.read_record(single.record_id, key_share=share).data
    if expected != lab.read_record(single.record_id).data:
        raise RuntimeError("the benchmark's reader decrypted something else than the writer wrote")
    p50, p95 = _timed(lambda: doctor.read_record(single.record_id, key_share=share), reads)
    batched_id = batch.batches[0].records[7].record_id
    if doctor.read_record(batched_id, key_share=share).data != lab.read_record(batched_id).data:
        raise RuntimeError("the benchmark's reader decrypted another batched record than the writer wrote")
    b50, b95 = _timed(lambda: doctor.read_record(batched_id, key_share=share), batched_reads)
    return ReadResult(reads, p50, p95, batched_reads, b50, b95)
