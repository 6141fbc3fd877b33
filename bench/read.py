"""Read latency: a full read of a 1 KB record by a grantee, many times, where its time goes, and its floors.

Each read is `EHRClient.read_record`: the record's state and anchoring event, the grant check, the
`requestAccess` transaction mined, the blob fetched, its sha256 checked against the chain, the key
share opened, decrypted, FHIR-validated. Also: the same call for a record anchored in a batch of 16
(`read_record` by id: locating its batch through the chain's batch index, the manifest fetched and
checked against the anchor, the proof checked off chain and again on chain by `requestBatchedAccess`).
Both are reads by record id, as a user does them: the locating is part of the figure.

Where the time goes (`phases`): further reads of the same record with every JSON-RPC round trip
(named by what it carries), the signing, the fetch, the sha256, the key, the decryption and the FHIR
validation timed where the pipeline calls them; medians per phase. `python` is the rest of the
read: encoding, decoding, bookkeeping. The fetch and its sha256 run on a worker thread while the
access request is mined, so they overlap the receipt wait and are not part of `python`.

`first_*`: reads of records the reader never located before (a fresh client each): the repeated
reads ask a located record's status only, these also look its anchoring event up in the logs.

Floors on the same Anvil, interleaved with those reads so both see the same load: one bare
`eth_blockNumber` round trip over a kept-alive HTTP connection with nothing but `http.client`
(`bare_round_trip_ms`); the same request through the client's RPC layer (`ChainClient.batch`); and
the cheapest transaction the suite accepts, mined through the same `ChainClient.transact` path
(`requestAccess` by the record's own patient: no grant to check, only the event). The read's floor
is its round trips times the bare round trip; the rest is ours, and it includes the node's time to
mine the access request, which the cheapest mined transaction measures: `read_beyond_cheapest_tx_ms`
is what a read costs over a transaction through the same path.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bench._records import observation
from bench._world import DAY, World
from ehr_client.batch import BatchItem, BatchWriter
from ehr_client.client import EHRClient
from ehr_client.client import read as read_pipeline
from ehr_client.client.keysource import ShareIndex
from ehr_client.records import Scope

PHASES = ("locate", "locate+plan", "plan", "sign", "send", "send+receipt", "receipt", "other rpc", "key",
          "decrypt", "fhir validation", "python")
"""Phases on the read's own thread, in pipeline order; they add up to the read."""
OVERLAPPED = ("fetch", "verify sha256")
"""On the worker thread, while the access request is mined."""


@dataclass(frozen=True)
class ReadResult:
    reads: int
    p50_ms: float
    p95_ms: float
    batched_reads: int
    batched_p50_ms: float
    batched_p95_ms: float
    phases: dict[str, Any] = field(default_factory=dict)
    floors: dict[str, Any] = field(default_factory=dict)
    first_reads: int = 0
    first_p50_ms: float = 0.0
    first_p95_ms: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "p50_ms": round(self.p50_ms, 2), "p95_ms": round(self.p95_ms, 2), "reads": self.reads,
            "batched_p50_ms": round(self.batched_p50_ms, 2), "batched_p95_ms": round(self.batched_p95_ms, 2),
            "batched_reads": self.batched_reads, "phases": self.phases, "floors": self.floors,
            "first_reads": self.first_reads, "first_p50_ms": round(self.first_p50_ms, 2),
            "first_p95_ms": round(self.first_p95_ms, 2),
        }


def _quantiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return statistics.median(samples), cuts[94]


def _timed(read: Callable[[], object], count: int) -> tuple[float, float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        read()
        samples.append((time.perf_counter() - start) * 1000)
    return _quantiles(samples)


def _trip_phase(methods: list[str]) -> str:
    has = set(methods).__contains__
    if has("eth_sendRawTransactionSync"):
        return "send+receipt"  # the node mines on arrival: the send's answer is the receipt
    if has("eth_sendRawTransaction"):
        return "send"
    if has("eth_getTransactionReceipt"):
        return "receipt"
    if has("eth_getLogs"):
        return "locate+plan" if has("eth_estimateGas") or has("eth_getTransactionCount") else "locate"
    if has("eth_estimateGas") or has("eth_getTransactionCount"):
        return "plan"
    return "other rpc"


class PhaseClock:
    """Times the phases of reads by `client` (see the module docstring) by wrapping, for the duration of
    `watching()`, the seams the read pipeline calls: the provider's batch request, the account's
    signing, the store, and the key, decryption and validation steps of `ehr_client.client.read`."""

    def __init__(self, client: EHRClient) -> None:
        self.client = client
        self.spans: list[tuple[str, float]] = []
        self.trips = 0

    def _timing(self, phase: str | Callable[[tuple[Any, ...]], str], fn: Callable[..., Any],
                *, drain: bool = False) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                result = fn(*args, **kwargs)
                return list(result) if drain else result
            finally:
                self.spans.append((phase if isinstance(phase, str) else phase(args), time.perf_counter() - start))
        return timed

    @contextmanager
    def watching(self) -> Iterator[None]:
        reader = self.client.reader
        provider = self.client.chain.provider

        def trip(args: tuple[Any, ...]) -> str:
            self.trips += 1
            return _trip_phase([method for method, _ in args[0]])

        swaps: list[tuple[object, str, object]] = [
            (provider, "make_batch_request", self._timing(trip, provider.make_batch_request)),
            (self.client.identity.account, "sign_transaction",
             self._timing("sign", self.client.identity.account.sign_transaction)),
            (reader.store, "get", self._timing("fetch", reader.store.get)),
            (read_pipeline, "hashlib", _Sha256Clock(self)),
            (read_pipeline, "parse_header", self._timing("key", read_pipeline.parse_header)),
            (read_pipeline, "check_header", self._timing("key", read_pipeline.check_header)),
            (read_pipeline, "own_data_key", self._timing("key", read_pipeline.own_data_key)),
            (ShareIndex, "data_key", self._timing("key", ShareIndex.data_key)),
            (read_pipeline, "iter_decrypt", self._timing("decrypt", read_pipeline.iter_decrypt, drain=True)),
            (read_pipeline, "validate_fhir", self._timing("fhir validation", read_pipeline.validate_fhir)),
        ]
        with ExitStack() as undo:
            for owner, name, wrapper in swaps:
                original = owner.__dict__[name] if name in getattr(owner, "__dict__", {}) else None
                setattr(owner, name, wrapper)
                undo.callback(_restore, owner, name, original)
            yield

    def one(self, read: Callable[[], object]) -> tuple[float, dict[str, float], int]:
        """One read: its total ms, ms per phase, and its round trips."""
        self.spans.clear()
        self.trips = 0
        start = time.perf_counter()
        read()
        total = (time.perf_counter() - start) * 1000
        phases: dict[str, float] = {}
        for phase, seconds in self.spans:
            phases[phase] = phases.get(phase, 0.0) + seconds * 1000
        phases["python"] = total - sum(ms for phase, ms in phases.items() if phase not in OVERLAPPED)
        return total, phases, self.trips


class _Sha256Clock:
    """Stands in for the `hashlib` module the read pipeline uses, timing its sha256 as `verify sha256`."""

    def __init__(self, clock: PhaseClock) -> None:
        self._clock = clock

    def sha256(self, data: bytes = b"") -> Any:
        start = time.perf_counter()
        digest = hashlib.sha256(data)
        self._clock.spans.append(("verify sha256", time.perf_counter() - start))
        return digest

    def __getattr__(self, name: str) -> Any:
        return getattr(hashlib, name)


def _restore(owner: object, name: str, original: object) -> None:
    if original is None:
        delattr(owner, name)
    else:
        setattr(owner, name, original)


class BareRoundTrip:
    """`eth_blockNumber` over one kept-alive connection with nothing but `http.client`: the node's floor."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._path = parts.path or "/"
        self._connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
        self._body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}).encode()

    def __call__(self) -> None:
        self._connection.request("POST", self._path, self._body, {"Content-Type": "application/json"})
        answer = self._connection.getresponse().read()
        if b"result" not in answer:
            raise RuntimeError(f"the node did not answer eth_blockNumber: {answer[:200]!r}")

    def close(self) -> None:
        self._connection.close()


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def measure(world: World, *, reads: int, batched_reads: int, phase_reads: int = 50, first_reads: int = 20) -> ReadResult:
    patient, lab, doctor = (world.client(name, "read") for name in ("patient", "lab", "doctor"))
    world.onboard()
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
    phases, floors = _phases_and_floors(world, patient, doctor, single.record_id, share, phase_reads)
    f50, f95 = _first_reads(world, lab, patient, doctor.address, first_reads)
    return ReadResult(reads, p50, p95, batched_reads, b50, b95, phases, floors, first_reads, f50, f95)


def _first_reads(world: World, lab: EHRClient, patient: EHRClient, grantee: str, count: int) -> tuple[float, float]:
    """Each of `count` records read once by a reader that never located it (a client of its own):
    the record's anchoring event is looked up in the logs, which the repeated reads above skip."""
    written = [lab.add_record(patient.address, observation(6_000 + i)).record_id for i in range(count)]
    share, _ = patient.share_keys(grantee, int(Scope.LAB))
    samples = []
    for record_id in written:
        reader = world.client("doctor", "read-first")
        start = time.perf_counter()
        reader.read_record(record_id, key_share=share)
        samples.append((time.perf_counter() - start) * 1000)
    return _quantiles(samples)


def _phases_and_floors(world: World, patient: EHRClient, doctor: EHRClient, record_id: bytes, share: Any,
                       rounds: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """`rounds` interleaved rounds of: a bare round trip, the same through the RPC layer, the cheapest
    mined transaction, one phase-timed read."""
    bare = BareRoundTrip(world.rpc_url)
    clock = PhaseClock(doctor)
    own_access = patient.chain.consent.functions.requestAccess(record_id)
    samples: dict[str, list[float]] = {"bare": [], "rpc_layer": [], "tx": [], "read": []}
    per_phase: dict[str, list[float]] = {name: [] for name in (*PHASES, *OVERLAPPED)}
    trips: list[int] = []

    def ms(fn: Callable[[], object]) -> float:
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1000

    try:
        for _ in range(rounds):
            samples["bare"].append(ms(bare))
            samples["rpc_layer"].append(ms(lambda: doctor.chain.batch([("eth_blockNumber", [])])))
            samples["tx"].append(ms(lambda: patient.chain.transact(patient.identity.account, own_access,
                                                                   action="request access")))
            with clock.watching():
                total, phases, count = clock.one(lambda: doctor.read_record(record_id, key_share=share))
            samples["read"].append(total)
            trips.append(count)
            for name in per_phase:
                per_phase[name].append(phases.get(name, 0.0))
    finally:
        bare.close()
    read_ms, bare_ms = statistics.median(samples["read"]), statistics.median(samples["bare"])
    round_trips = statistics.median(trips)
    floor_ms = round_trips * bare_ms
    phase_medians = {name: _median(values) for name, values in per_phase.items() if any(values)}
    floors = {
        "rounds": rounds,
        "bare_round_trip_ms": _median(samples["bare"]),
        "rpc_layer_round_trip_ms": _median(samples["rpc_layer"]),
        "cheapest_tx_mined_ms": _median(samples["tx"]),
        "cheapest_tx": "ConsentManager.requestAccess by the record's own patient, through ChainClient.transact",
        "read_ms": round(read_ms, 3),
        "read_round_trips": round_trips,
        "read_floor_ms": round(floor_ms, 3),
        "read_ours_ms": round(read_ms - floor_ms, 3),
        "read_over_bare_round_trip": round(read_ms / bare_ms, 1),
        "read_over_cheapest_tx": round(read_ms / statistics.median(samples["tx"]), 2),
        "read_beyond_cheapest_tx_ms": round(read_ms - statistics.median(samples["tx"]), 3),
        "floor_share_of_read": round(floor_ms / read_ms, 3),
    }
    return {"median_ms": phase_medians, "reads": rounds, "what": __doc__.split("\n\n")[1].replace("\n", " ")
            if __doc__ else ""}, floors
