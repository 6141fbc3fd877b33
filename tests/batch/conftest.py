"""Fixtures for batch anchoring: the client tests' deployed suite and people, plus record factories."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ehr_client.chain.client import ChainClient
from ehr_client.client import EHRClient, Identity
from ehr_client.records import Scope
from ehr_client.storage import LocalStore
from tests.client.conftest import (  # noqa: F401  (fixtures shared with the client tests)
    client_for,
    ids,
    people,
    rpc_url,
    store,
    suite,
)
from tests.constants import DAY

LAB, CONDITIONS = int(Scope.LAB), int(Scope.CONDITIONS)


def observation(n: int) -> dict[str, Any]:
    """A distinct glucose Observation of about 1 KB."""
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]},
        "effectiveDateTime": f"2026-01-{1 + n % 28:02d}T08:{n % 60:02d}:00Z",
        "valueQuantity": {"value": 4 + (n % 400) / 100, "unit": "mmol/L"},
        "note": [{"text": f"sample {n} " + "fasting, venous blood, processed within two hours. " * 14}],
    }


def condition(n: int) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                       "code": "active"}]},
        "code": {"text": f"condition {n}"},
        "subject": {"reference": "Patient/example"},
    }


@pytest.fixture
def writer_lab(people: dict[str, EHRClient]) -> EHRClient:
    """The lab, holding an amend grant from the patient for lab results and conditions.

    (Not named `lab`: tests/conftest.py has a session fixture of that name, and Ape's isolation
    would then run this one before its snapshot and leak the grant into later tests.)"""
    patient = people["patient"]
    patient.grant(people["lab"].address, LAB | CONDITIONS, access="amend", expires_at=patient.chain.now() + DAY,
                  share_keys=False)
    return people["lab"]


@pytest.fixture
def fhir_dir(tmp_path: Path) -> Callable[[int], Path]:
    """A directory of `n` Observation files, one resource per file."""

    def make(n: int) -> Path:
        import json

        folder = tmp_path / "import"
        folder.mkdir(exist_ok=True)
        for i in range(n):
            (folder / f"obs-{i:04d}.json").write_text(json.dumps(observation(i)))
        return folder

    return make


class RpcCounter:
    """A loopback HTTP proxy in front of the node that records every JSON-RPC round trip it forwards."""

    def __init__(self, upstream: str) -> None:
        self.trips: list[list[str]] = []
        counter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                payload = json.loads(body)
                calls = payload if isinstance(payload, list) else [payload]
                counter.trips.append([call["method"] for call in calls])
                request = urllib.request.Request(upstream, data=body, headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=30) as response:
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
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def rpc_counter(rpc_url: str) -> Iterator[RpcCounter]:
    counter = RpcCounter(rpc_url)
    try:
        yield counter
    finally:
        counter.close()


@pytest.fixture
def counted_client(rpc_counter: RpcCounter, suite: ChainClient, ids: dict[str, Identity], store: LocalStore,
                   tmp_path: Path) -> Callable[[str], EHRClient]:
    """An EHRClient for the named identity whose every JSON-RPC round trip `rpc_counter` records."""

    def make(name: str) -> EHRClient:
        return EHRClient(ChainClient(rpc_counter.url, suite.deployment), store, ids[name],
                         state_dir=tmp_path / "counted" / name)

    return make
