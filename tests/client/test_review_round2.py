"""Breaks an outside review found in the merged system (its A1, A2, A4, A6, A12, A15), acted out again."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from ehr_client.client import EHRClient
from ehr_client.custodian.errors import CustodianUnavailable
from ehr_client.custodian.messages import CustodianDomain
from ehr_client.errors import InvalidRecord, RecordErased
from ehr_client.journal import JournalDamaged
from ehr_client.records import Scope, canonicalize
from ehr_client.sharing.remote import CustodianClient
from ehr_client.storage import cid_to_bytes
from tests.client.conftest import lab_result
from tests.constants import DAY

LAB = int(Scope.LAB)


def _obs(n: int) -> dict[str, Any]:
    return lab_result(f"glucose {n}", 5 + n / 10)


def _lab(people: dict[str, EHRClient]) -> EHRClient:
    patient, lab = people["patient"], people["lab"]
    patient.grant(lab.address, LAB, access="amend", expires_at=patient.chain.now() + 30 * DAY, share_keys=False)
    return lab


def test_a1_a_deeply_nested_manifest_is_skipped_not_a_crash(people: dict[str, EHRClient]) -> None:
    patient, lab = people["patient"], _lab(people)
    good = lab.add_record(patient.address, _obs(0))
    bomb = b"[" * 200_000 + b"]" * 200_000
    cid = lab.store.put(bomb)
    lab.chain.transact(lab.identity.account, lab.chain.records.functions.anchorBatch(
        os.urandom(32), patient.address, LAB, os.urandom(32), 2, hashlib.sha256(bomb).digest(), cid_to_bytes(cid)),
        action="bomb")
    report = patient.list_records_report(patient.address)
    assert [r.record_id for r in report.records] == [good.record_id] and len(report.skipped) == 1
    assert patient.grant(people["doctor"].address, LAB, expires_at=patient.chain.now() + DAY).shared_records == 1


def test_a2_one_record_without_its_blob_does_not_hide_the_history(people: dict[str, EHRClient]) -> None:
    patient, lab = people["patient"], _lab(people)
    kept = lab.add_record(patient.address, _obs(1))
    lost = lab.add_record(patient.address, _obs(2))
    lab.store.remove(lost.cid)
    results, skipped = patient.read_history_report(patient.address)
    assert [r.info.record_id for r in results] == [kept.record_id]
    assert [s.what for s in skipped] == [f"record 0x{lost.record_id.hex()}"]
    assert patient.read_history(patient.address)[0].data == canonicalize(_obs(1))


def test_a4_writing_erased_or_amended_content_again_is_refused(people: dict[str, EHRClient]) -> None:
    patient, lab = people["patient"], _lab(people)
    erased = lab.add_record(patient.address, _obs(3))
    patient.tombstone(patient.get_record(erased.record_id))
    with pytest.raises(RecordErased, match="erased"):
        lab.add_record(patient.address, _obs(3))
    first = lab.add_record(patient.address, _obs(4))
    lab.amend_record(first.record_id, _obs(5))
    with pytest.raises(InvalidRecord, match="since amended"):
        lab.add_record(patient.address, _obs(4))


def test_a6_a_torn_acknowledgement_line_never_swallows_the_next(people: dict[str, EHRClient]) -> None:
    patient, lab = people["patient"], _lab(people)
    first = lab.add_record(patient.address, _obs(6))
    with open(lab.journal.acknowledged_path, "ab") as log:
        log.write(b'{"cid":"bafk')  # the disk filled up mid-append
    second = lab.add_record(patient.address, _obs(7))
    assert [e.record_id for e in lab.journal.acknowledged()] == ["0x" + first.record_id.hex(),
                                                                 "0x" + second.record_id.hex()]


def test_a12_a_damaged_pending_entry_is_never_anchored(people: dict[str, EHRClient], tmp_path: Path) -> None:
    patient, lab = people["patient"], _lab(people)
    w3 = lab.chain.w3
    # the anchor of the first attempt never makes it: the node drops it
    w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    lab.chain.timeout = 1
    try:
        with pytest.raises(Exception):
            lab.add_record(patient.address, _obs(8))
        w3.provider.make_request("anvil_dropAllTransactions", [])  # type: ignore[arg-type]
    finally:
        w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
        lab.chain.timeout = 30
    [entry_path] = list((lab.state_dir / "pending").glob("*.json"))
    raw = entry_path.read_bytes()
    at = raw.index(b'"content_hash":"0x') + 20
    entry_path.write_bytes(raw[:at] + (b"0" if raw[at:at + 1] != b"0" else b"1") + raw[at + 1:])  # one digit flipped
    with pytest.raises(JournalDamaged, match="is damaged; move it aside"):
        lab.add_record(patient.address, _obs(8))
    entry_path.rename(entry_path.with_name(entry_path.name + ".damaged"))  # what the message says to do
    written = lab.add_record(patient.address, _obs(8))
    assert not written.reused_pending
    assert patient.read_record(written.record_id).data == canonicalize(_obs(8))


def test_a15_a_custodian_answering_a_json_bomb_is_just_unavailable() -> None:
    class Bomb(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = b"[" * 100_000 + b"]" * 100_000
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Bomb)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = CustodianClient(f"http://127.0.0.1:{server.server_address[1]}",
                                 CustodianDomain(31337, "0x" + "11" * 20))
        with pytest.raises(CustodianUnavailable):
            client.info()
    finally:
        server.shutdown()
