"""Writer and reader processes for the concurrency test (started with multiprocessing, spawn).

Each process builds its own ChainClient, IpfsStore and EHRClient from plain arguments, works until
its deadline, and reports what it did: every acknowledged write (record id, anchoring transaction,
sha256 of the plaintext), every read and its outcome, and errors counted by type.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ehr_client.chain.client import ChainClient
from ehr_client.chain.deployment import Deployment
from ehr_client.errors import EHRError
from ehr_client.records import canonicalize
from ehr_client.storage import IpfsStore
from tests.security.suite import dev_account, ehr_client_for

RETRIES = 5


@dataclass
class Report:
    name: str
    account: int
    writes: list[tuple[str, str, str]] = field(default_factory=list)  # (record id, tx hash, plaintext sha256)
    reads_ok: int = 0
    reads_wrong: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    error_messages: Counter[str] = field(default_factory=Counter)
    given_up: int = 0
    reused_pending: int = 0
    pending_left: int = 0
    crashed: str | None = None

    def note(self, exc: EHRError) -> None:
        """Count the error by type, and by its message with hex values masked (for the report)."""
        self.errors[type(exc).__name__] += 1
        self.error_messages[re.sub(r"0x[0-9a-fA-F]+", "0x…", str(exc))[:160]] += 1


def observation(name: str, n: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
        "valueQuantity": {"value": n, "unit": f"mmol/L ({name})"},
    }


def _client(rpc_url: str, deployment: str, ipfs_api: str, account: int, state: Path) -> Any:
    chain = ChainClient(rpc_url, Deployment.from_json(deployment))
    return ehr_client_for(chain, IpfsStore(ipfs_api, timeout=30, retries=2), dev_account(account), state)


def run_writer(name: str, rpc_url: str, deployment: str, ipfs_api: str, account: int, state: str, seconds: float,
               results: Any, acknowledged: Any) -> None:
    """Write records of the identity's own patient until the deadline; share acknowledged ones."""
    report = Report(name, account)
    try:
        client = _client(rpc_url, deployment, ipfs_api, account, Path(state))
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline:
            n += 1
            resource = observation(name, n)
            written = None
            for _ in range(RETRIES):  # a failed write is retried as is: the journal reuses its stored blob
                try:
                    written = client.add_record(client.address, resource)
                    break
                except EHRError as exc:
                    report.note(exc)
            if written is None:
                report.given_up += 1
                continue
            report.reused_pending += int(written.reused_pending)
            digest = hashlib.sha256(canonicalize(resource)).hexdigest()
            tx_hash = written.tx.tx_hash if written.tx else ""
            report.writes.append((written.record_id.hex(), tx_hash, digest))
            acknowledged.append((account, written.record_id.hex(), digest))
        report.pending_left = len(client.journal.pending())
    except BaseException:
        report.crashed = traceback.format_exc()[-2000:]
    results.put(report)


def run_reader(name: str, rpc_url: str, deployment: str, ipfs_api: str, account: int, state: str, seconds: float,
               results: Any, acknowledged: Any) -> None:
    """Read acknowledged records of the identity (an on-chain access request each) until the deadline."""
    report = Report(name, account)
    rng = random.Random(name)
    try:
        client = _client(rpc_url, deployment, ipfs_api, account, Path(state))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            mine = [(r, d) for a, r, d in list(acknowledged) if a == account]
            if not mine:
                time.sleep(0.05)
                continue
            record_id, digest = rng.choice(mine)
            try:
                data = client.read_record(bytes.fromhex(record_id)).data
            except EHRError as exc:
                report.note(exc)
                continue
            if hashlib.sha256(data).hexdigest() == digest:
                report.reads_ok += 1
            else:
                report.reads_wrong += 1
    except BaseException:
        report.crashed = traceback.format_exc()[-2000:]
    results.put(report)
