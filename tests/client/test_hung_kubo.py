"""A Kubo node that hangs (SIGSTOP: connections accepted, nothing answered) during a write and a
read: a typed `StorageUnavailable` within the store's one deadline, retries included, nothing
half-written; once it runs again (SIGCONT) the same write lands once and the read succeeds."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from ehr_client.client import EHRClient
from ehr_client.errors import StorageUnavailable
from ehr_client.records import canonicalize
from ehr_client.storage import IpfsStore
from ehr_client.storage.kubo import KuboDaemon
from tests.hang import hang

pytestmark = pytest.mark.kubo
DEADLINE = 2.0
SLACK = 1.5  # process scheduling on a loaded machine; a retry would take another DEADLINE


@contextmanager
def _hung(daemon: KuboDaemon) -> Iterator[None]:
    assert daemon.pid is not None
    hang(daemon.pid)
    try:
        yield
    finally:
        os.kill(daemon.pid, signal.SIGCONT)


def _timed_failure(call: Callable[[], Any]) -> float:
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match=f"did not answer .* within {DEADLINE:g}s"):
        call()
    return time.monotonic() - started


def test_a_write_to_a_hung_node_fails_within_the_deadline_and_lands_once_after(
    people: dict[str, EHRClient], client_for: Callable[..., EHRClient], start_kubo: Callable[..., KuboDaemon],
    observation: dict[str, Any],
) -> None:
    daemon = start_kubo()
    patient = client_for("patient", blob_store=IpfsStore(daemon.api_url, timeout=DEADLINE))
    with _hung(daemon):
        elapsed = _timed_failure(lambda: patient.add_record(patient.address, observation))
        assert elapsed < DEADLINE + SLACK, f"a hung Kubo held the write for {elapsed:.1f}s"
        assert patient.list_records(patient.address) == [] and patient.journal.pending() == []

    written = patient.add_record(patient.address, observation)  # the same write, the node running again

    assert [r.record_id for r in patient.list_records(patient.address)] == [written.record_id]
    assert patient.read_record(written.record_id).data == canonicalize(observation)
    assert [e.record_id for e in patient.journal.acknowledged()] == ["0x" + written.record_id.hex()]


def test_a_read_from_a_hung_node_fails_within_the_deadline_and_succeeds_after(
    people: dict[str, EHRClient], client_for: Callable[..., EHRClient], start_kubo: Callable[..., KuboDaemon],
    observation: dict[str, Any],
) -> None:
    daemon = start_kubo()
    patient = client_for("patient", blob_store=IpfsStore(daemon.api_url, timeout=DEADLINE))
    written = patient.add_record(patient.address, observation)
    with _hung(daemon):
        elapsed = _timed_failure(lambda: patient.read_record(written.record_id))
        assert elapsed < DEADLINE + SLACK, f"a hung Kubo held the read for {elapsed:.1f}s"

    assert patient.read_record(written.record_id).data == canonicalize(observation)
    assert [r.record_id for r in patient.list_records(patient.address)] == [written.record_id]
