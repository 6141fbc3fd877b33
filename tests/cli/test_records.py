"""`ehr record`: add, get, list, verify, amend, and how their failures are reported."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Cli


def test_lab_adds_and_patient_reads_lists_and_verifies(cli: Cli, world: dict[str, str], lab_record: str) -> None:
    listed = cli.json("record", "list", "patient")["records"]
    mine = next(r for r in listed if r["recordId"] == lab_record)
    assert mine["author"] == world["lab"] and mine["scopeNames"] == ["lab"] and mine["status"] == "active"

    read = cli("record", "get", lab_record, wallet="patient")
    assert json.loads(read.stdout)["code"]["coding"][0]["code"] == "2345-7"
    assert "access recorded on chain" in read.stderr

    verified = cli.json("record", "verify", lab_record, wallet="patient")
    assert verified == [{"recordId": lab_record, "ok": True, "problem": None}]


def test_get_info_shows_chain_facts_without_decrypting(cli: Cli, world: dict[str, str], lab_record: str) -> None:
    info = cli.json("record", "get", lab_record, wallet="stranger")
    assert info["recordId"] == lab_record and info["patient"] == world["patient"]
    assert info["cid"].startswith("bafk") and "valueQuantity" not in json.dumps(info)


def test_get_writes_to_out_file_owner_only_and_refuses_to_overwrite(
    cli: Cli, world: dict[str, str], lab_record: str, tmp_path: Path
) -> None:
    target = tmp_path / "result.json"
    cli("record", "get", lab_record, "--out", str(target), wallet="patient")
    assert json.loads(target.read_text())["status"] == "final"
    assert target.stat().st_mode & 0o777 == 0o600
    refused = cli("record", "get", lab_record, "--out", str(target), wallet="patient", expect=1)
    assert "--force" in refused.stderr


def test_amend_links_versions(cli: Cli, world: dict[str, str], lab_record: str, observation: Path) -> None:
    doc = json.loads(observation.read_text())
    doc["valueQuantity"]["value"] = 6.1
    observation.write_text(json.dumps(doc))
    amended = cli.json("record", "amend", lab_record, str(observation), wallet="lab")
    listed = {r["recordId"]: r for r in cli.json("record", "list", "patient")["records"]}
    assert listed[lab_record]["status"] == "superseded"
    assert listed[amended["recordId"]]["previousId"] == lab_record
    again = cli("record", "amend", lab_record, str(observation), wallet="lab", expect=1)
    assert "superseded" in again.stderr


def test_pdf_is_stored_as_an_opaque_file(cli: Cli, world: dict[str, str], tmp_path: Path) -> None:
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 2000)
    added = cli.json("record", "add", "patient", str(pdf), "--category", "pdf", wallet="patient")
    out = tmp_path / "back.pdf"
    cli("record", "get", added["recordId"], "--out", str(out), wallet="patient")
    assert out.read_bytes() == pdf.read_bytes()
    assert cli.json("record", "get", added["recordId"])["scopeNames"] == ["documents"]


def test_stranger_cannot_write_exit_3(cli: Cli, world: dict[str, str], observation: Path) -> None:
    result = cli("record", "add", "patient", str(observation), wallet="stranger", expect=3)
    assert result.stderr.startswith("error: ") and "may not write" in result.stderr


def test_malformed_fhir_exits_1_naming_the_field(cli: Cli, world: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"resourceType": "Observation", "code": {"text": "glucose"}}))
    result = cli("record", "add", "patient", str(bad), wallet="lab", expect=1)
    assert "Observation.status" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_unknown_record_exits_6(cli: Cli, world: dict[str, str]) -> None:
    result = cli("record", "get", "0x" + "ab" * 32, wallet="patient", expect=6)
    assert "no record" in result.stderr


def test_tampered_blob_fails_verification_exit_4(cli: Cli, world: dict[str, str], home: Path, tmp_path: Path) -> None:
    note = tmp_path / "note.pdf"
    note.write_bytes(b"%PDF-1.7\n" + b"x" * 5000)
    added = cli.json("record", "add", "patient", str(note), "--category", "pdf", wallet="patient")
    blob = home / "store" / added["cid"][-3:-1] / added["cid"]
    original = blob.read_bytes()
    blob.chmod(0o600)
    blob.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        verify = cli("record", "verify", added["recordId"], wallet="patient", expect=4)
        assert "FAILED" in verify.stdout and verify.stderr.startswith("error: 1 of 1 record(s) failed")
        cli("record", "get", added["recordId"], "--out", str(tmp_path / "out.pdf"), wallet="patient", expect=4)
    finally:
        blob.write_bytes(original)
