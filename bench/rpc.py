"""JSON-RPC round trips per operation, counted by a loopback HTTP proxy in front of the node.

A client whose `ChainClient` points at the proxy does each operation twice: the first time on a
fresh `ChainClient` (cold: nothing cached), then the same kind of operation again (warm: what
every later call costs). A round trip is one HTTP request; a JSON-RPC batch is one round trip
holding several methods, listed in `trips` as `a+b+c` (`eth_call x312`: 312 calls in one batch).
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bench._records import observation
from bench._world import DAY, World
from ehr_client.batch import BatchItem, BatchWriter
from ehr_client.chain.client import ChainClient
from ehr_client.client import EHRClient
from ehr_client.records import Scope

LAB = int(Scope.LAB)


class RpcCounter:
    """A loopback HTTP proxy that forwards JSON-RPC to `upstream` and records the methods of each request."""

    def __init__(self, upstream: str) -> None:
        self.trips: list[list[str]] = []
        self.calls: list[list[dict[str, Any]]] = []  # each round trip's JSON-RPC requests, params included
        self._lock = threading.Lock()
        counter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                payload = json.loads(body)
                calls = payload if isinstance(payload, list) else [payload]
                with counter._lock:
                    counter.trips.append([str(call.get("method")) for call in calls])
                    counter.calls.append(calls)
                request = urllib.request.Request(upstream, data=body, headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=60) as response:
                    answer = response.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @contextmanager
    def counting(self) -> Iterator[list[list[str]]]:
        """The round trips made inside the block (a fresh list, filled when the block ends)."""
        with self._lock:
            start = len(self.trips)
        found: list[list[str]] = []
        try:
            yield found
        finally:
            with self._lock:
                found.extend(self.trips[start:])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


@dataclass(frozen=True)
class Trips:
    """The round trips of one operation, cold (fresh ChainClient) and warm (the same again)."""

    what: str
    cold: list[list[str]]
    warm: list[list[str]]

    def to_json(self) -> dict[str, Any]:
        methods = Counter(m for trip in self.warm for m in trip)
        return {
            "round_trips": len(self.warm), "round_trips_cold": len(self.cold),
            "json_rpc_calls": sum(len(t) for t in self.warm), "json_rpc_calls_cold": sum(len(t) for t in self.cold),
            "methods": dict(sorted(methods.items())),
            "trips": [_trip(t) for t in self.warm], "trips_cold": [_trip(t) for t in self.cold],
            "what": self.what,
        }


def _trip(methods: list[str]) -> str:
    """One round trip as `a+b`, a method repeated in a batch as `eth_call x312`."""
    counts = Counter(methods)
    return "+".join(m if counts[m] == 1 else f"{m} x{counts[m]}" for m in dict.fromkeys(methods))


@dataclass
class RpcResult:
    operations: dict[str, Trips] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {name: trips.to_json() for name, trips in self.operations.items()}


def _twice(counter: RpcCounter, make: Callable[[], EHRClient], op: Callable[[EHRClient, int], object]) -> tuple[
        list[list[str]], list[list[str]]]:
    """`op` on a client built inside the count (cold, counting the ChainClient's start), then again (warm)."""
    with counter.counting() as cold:
        client = make()
        op(client, 0)
    with counter.counting() as warm:
        op(client, 1)
    return cold, warm


def measure(world: World) -> RpcResult:
    result = RpcResult()
    counter = RpcCounter(world.rpc_url)
    try:
        deployment = world.chain.deployment

        def counted(name: str, tag: str) -> Callable[[], EHRClient]:
            return lambda: world.client(name, tag, chain=ChainClient(counter.url, deployment, timeout=60))

        world.onboard()
        patient, lab, doctor = (world.client(n, "rpc") for n in ("patient", "lab", "doctor"))
        patient.grant(lab.address, LAB, access="amend", expires_at=patient.chain.now() + DAY, share_keys=False)

        written: list[bytes] = []

        def write(client: EHRClient, i: int) -> None:
            written.append(client.add_record(patient.address, observation(70_000 + i)).record_id)

        cold, warm = _twice(counter, counted("lab", "rpc-write"), write)
        result.operations["single_write"] = Trips(
            "EHRClient.add_record: a lab with an amend grant writes a 1 KB FHIR record for a patient", cold, warm)

        batch = BatchWriter(lab).write(BatchItem(patient.address, observation(71_000 + i)) for i in range(16))
        patient.grant(doctor.address, LAB, expires_at=patient.chain.now() + DAY, share_keys=False)
        share, _ = patient.share_keys(doctor.address, LAB)

        def read(client: EHRClient, i: int) -> None:
            client.read_record(written[i], key_share=share)

        cold, warm = _twice(counter, counted("doctor", "rpc-read"), read)
        result.operations["read"] = Trips(
            "EHRClient.read_record(record id): full read of a 1 KB record by a grantee with a key share", cold, warm)

        batched = [batch.batches[0].records[i].record_id for i in (3, 4)]

        def read_batched(client: EHRClient, i: int) -> None:
            client.read_record(batched[i], key_share=share)

        cold, warm = _twice(counter, counted("doctor", "rpc-read-batched"), read_batched)
        result.operations["read_batched"] = Trips(
            "EHRClient.read_record(record id) of a record anchored in a batch of 16, same grantee", cold, warm)

        grantees = [world.client(n, "rpc") for n in ("fresh_grantee", "second_grantee")]
        expires = world.chain.now() + 7 * DAY  # read outside the counts: it is the caller's, not the grant's

        def grant_plain(client: EHRClient, i: int) -> None:
            client.grant(grantees[i].address, LAB, expires_at=expires, share_keys=False)

        cold, warm = _twice(counter, counted("patient", "rpc-grant"), grant_plain)
        result.operations["grant"] = Trips(
            "EHRClient.grant(share_keys=False): the patient grants LAB read to a member", cold, warm)

        def grant_sharing(client: EHRClient, i: int) -> None:
            client.grant(grantees[i].address, LAB, expires_at=expires + 1)

        cold, warm = _twice(counter, counted("patient", "rpc-grant-share"), grant_sharing)
        records = len(patient.list_records(patient.address))
        result.operations["grant_with_key_share"] = Trips(
            f"EHRClient.grant (default share_keys=True): LAB read plus a key share of the patient's records "
            f"({records} record versions on chain, single and batched)", cold, warm)
    finally:
        counter.close()
    return result
