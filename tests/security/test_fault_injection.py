"""Faults injected into real processes: Kubo killed mid-upload, Anvil restarted mid-write, a full
disk under the embedded store. After each: the failure is a typed error, nothing on chain points
at data that is missing, and a retry completes without a duplicate.

A key custodian killed mid-read is not here: custodians come with another issue (see SECURITY.md).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ehr_client.chain.client import ChainClient
from ehr_client.client import EHRClient
from ehr_client.errors import ChainUnavailable, StorageUnavailable
from ehr_client.dev.node import AnvilNode
from ehr_client.records import canonicalize
from ehr_client.storage import BlobStore, Cid, IpfsStore, LocalStore
from ehr_client.storage.kubo import KuboDaemon
from tests.security.suite import LocalSuite, deploy_local_suite, ehr_client_for

MiB = 1 << 20


def observation(value: float) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
        "valueQuantity": {"value": value, "unit": "mmol/L"},
    }


def write_pdf(path: Path, size: int, seed: int) -> Path:
    rng = random.Random(seed)
    with path.open("wb") as handle:
        handle.write(b"%PDF-1.7\n")
        for _ in range(size // MiB):
            handle.write(rng.randbytes(MiB))
    return path


class HookedStore:
    """The real store, calling `hook` once: after `put` stored a blob, or after `after_chunks`
    chunks of a `put_stream` were handed to it (the fault is injected from inside the write)."""

    def __init__(self, inner: BlobStore, hook: Callable[[], None], *, after_chunks: int | None = None) -> None:
        self.inner, self.hook, self.after_chunks = inner, hook, after_chunks

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put(self, data: bytes) -> Cid:
        cid = self.inner.put(data)
        if self.after_chunks is None:
            self.hook()
        return cid

    def put_stream(self, chunks: Iterable[bytes]) -> Cid:
        def watched() -> Iterator[bytes]:
            for count, chunk in enumerate(chunks, 1):
                yield chunk
                if count == self.after_chunks:
                    self.hook()

        return self.inner.put_stream(watched())


def assert_chain_points_only_at_stored_data(client: EHRClient, patient: str) -> list[Any]:
    records = client.list_records(patient)
    problems = [(r.record_id.hex()[:8], v.problem) for r, v in zip(records, client.verify_all(patient), strict=True)
                if not v.ok]
    assert not problems, f"records on chain whose data is missing or wrong: {problems}"
    return records


@pytest.fixture
def own_chain(tmp_path: Path) -> Iterator[tuple[AnvilNode, LocalSuite]]:
    """An Anvil of this test's own, with its state file, and the suite deployed on it."""
    node = AnvilNode(log_path=tmp_path / "anvil.log", state_path=tmp_path / "anvil-state.json").start()
    try:
        suite = deploy_local_suite(node.rpc_url)
        patient = suite.accounts["patient"]
        suite.chain.transact(patient, suite.chain.records.functions.registerPatient(), action="register")
        yield node, suite
    finally:
        node.stop()


def _kill(daemon: KuboDaemon) -> None:
    """SIGKILL: no clean shutdown, as in a crash or an OOM kill."""
    assert daemon.pid is not None
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.wait(timeout=10)


def _recursive_pins(api_url: str) -> dict[str, Any]:
    response = httpx.post(f"{api_url}/api/v0/pin/ls", params={"type": "recursive"}, timeout=10, trust_env=False)
    response.raise_for_status()
    return dict(response.json().get("Keys") or {})


# --- Kubo killed mid-upload -----------------------------------------------------------------------


def test_kubo_killed_mid_upload_from_a_thread_is_storage_unavailable_and_pins_nothing(
    start_kubo: Callable[..., KuboDaemon], tmp_path: Path,
) -> None:
    daemon = start_kubo(tmp_path / "repo")
    pinned_before = _recursive_pins(daemon.api_url)  # a fresh repo pins the empty directory
    store = IpfsStore(daemon.api_url, timeout=10, retries=1)
    halfway, killed = threading.Event(), threading.Event()
    outcome: list[BaseException | Cid] = []

    def chunks() -> Iterator[bytes]:
        rng = random.Random(7)
        for i in range(64):
            yield rng.randbytes(MiB)
            if i == 7:
                halfway.set()
                killed.wait(timeout=30)

    def upload() -> None:
        try:
            outcome.append(store.put_stream(chunks()))
        except BaseException as exc:  # the thread reports whatever it got; the test judges it
            outcome.append(exc)

    worker = threading.Thread(target=upload)
    worker.start()
    assert halfway.wait(timeout=30), "the upload never got going"
    _kill(daemon)
    killed.set()
    worker.join(timeout=60)
    assert not worker.is_alive(), "the upload hung after the daemon died"
    assert len(outcome) == 1 and isinstance(outcome[0], StorageUnavailable), outcome
    assert "cannot reach" in str(outcome[0]) or "IPFS" in str(outcome[0])

    restarted = start_kubo(tmp_path / "repo")
    assert _recursive_pins(restarted.api_url) == pinned_before, "a partial upload was pinned"


def test_kubo_killed_while_a_record_uploads_leaves_nothing_anchored_and_the_retry_completes(
    own_chain: tuple[AnvilNode, LocalSuite], start_kubo: Callable[..., KuboDaemon], tmp_path: Path,
) -> None:
    _, suite = own_chain
    patient = suite.accounts["patient"]
    daemon = start_kubo(tmp_path / "repo")
    pinned_before = _recursive_pins(daemon.api_url)
    pdf = write_pdf(tmp_path / "scan.pdf", 12 * MiB, seed=1)
    store = HookedStore(IpfsStore(daemon.api_url, timeout=10, retries=1), lambda: _kill(daemon), after_chunks=3)
    writer = ehr_client_for(suite.chain, store, patient, tmp_path / "state")  # type: ignore[arg-type]

    with pytest.raises(StorageUnavailable):
        writer.add_record(patient.address, pdf, category="pdf")
    assert writer.list_records(patient.address) == [] and writer.journal.pending() == []

    restarted = start_kubo(tmp_path / "repo")
    assert _recursive_pins(restarted.api_url) == pinned_before
    again = ehr_client_for(suite.chain, IpfsStore(restarted.api_url, timeout=30), patient, tmp_path / "state")
    written = again.add_record(patient.address, pdf, category="pdf")
    records = assert_chain_points_only_at_stored_data(again, patient.address)
    assert [r.record_id for r in records] == [written.record_id]
    assert again.read_record(written.record_id).data == pdf.read_bytes()


# --- Anvil restarted mid-write ------------------------------------------------------------------


def test_anvil_restarted_mid_write_fails_with_chain_unavailable_then_the_retry_reuses_the_blob(
    own_chain: tuple[AnvilNode, LocalSuite], tmp_path: Path,
) -> None:
    node, suite = own_chain
    patient = suite.accounts["patient"]
    blobs = LocalStore(tmp_path / "store")
    state = tmp_path / "state"
    writer = ehr_client_for(suite.chain, blobs, patient, state)
    acknowledged = {writer.add_record(patient.address, observation(v)).record_id: observation(v) for v in (1.0, 2.0)}

    # the node goes down after the blob of the third record was stored, before it is anchored
    doomed = ehr_client_for(suite.chain, HookedStore(blobs, node.stop), patient, state)  # type: ignore[arg-type]
    with pytest.raises(ChainUnavailable, match="cannot reach"):
        doomed.add_record(patient.address, observation(3.0))
    with pytest.raises(ChainUnavailable):
        writer.add_record(patient.address, observation(3.0))  # retrying while it is down fails the same way
    pending = writer.journal.pending()
    assert len(pending) == 1

    node.start()  # same state file: the chain comes back as it was when the node stopped
    chain = ChainClient(node.rpc_url, suite.deployment)
    writer = ehr_client_for(chain, blobs, patient, state)
    retried = writer.add_record(patient.address, observation(3.0))
    assert retried.reused_pending and "0x" + retried.record_id.hex() == pending[0].record_id
    acknowledged[retried.record_id] = observation(3.0)
    fourth = writer.add_record(patient.address, observation(4.0))
    acknowledged[fourth.record_id] = observation(4.0)

    records = assert_chain_points_only_at_stored_data(writer, patient.address)
    assert {r.record_id for r in records} == set(acknowledged)
    for record_id, resource in acknowledged.items():
        assert writer.read_record(record_id).data == canonicalize(resource)
    assert len([p for p in blobs.root.rglob("*") if p.is_file()]) == len(acknowledged), "a blob was stored twice"
    assert writer.journal.pending() == []


# --- disk full under the embedded store ------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs; skipped, with the reason, where mounting is not permitted."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no `mount` command on this machine")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or result.returncode}); run as root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True, check=False)


def test_full_disk_fails_the_write_with_storage_unavailable_and_anchors_nothing(
    own_chain: tuple[AnvilNode, LocalSuite], small_disk: Path, tmp_path: Path,
) -> None:
    _, suite = own_chain
    patient = suite.accounts["patient"]
    store = LocalStore(small_disk / "store")
    writer = ehr_client_for(suite.chain, store, patient, tmp_path / "state")
    pdf = write_pdf(tmp_path / "big.pdf", 3 * MiB, seed=2)

    with pytest.raises(StorageUnavailable, match="disk full"):
        writer.add_record(patient.address, pdf, category="pdf")
    assert writer.list_records(patient.address) == [] and writer.journal.pending() == []
    assert [p for p in store.root.rglob("*") if p.is_file()] == [], "a partial blob was left behind"

    # the space the failed write took is free again: a small record fits and is anchored
    small = writer.add_record(patient.address, observation(5.0))
    filler = small_disk / "filler"
    with pytest.raises(OSError):
        with filler.open("wb") as handle:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
    with pytest.raises(StorageUnavailable, match="disk full"):
        writer.add_record(patient.address, observation(6.0))
    records = assert_chain_points_only_at_stored_data(writer, patient.address)
    assert [r.record_id for r in records] == [small.record_id]
