"""Break 7a: records written by `ehr record import` are first class in every record command and the audit."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Cli


def test_imported_records_are_listed_read_verified_amended_and_audited(
    cli: Cli, world: dict[str, str], observation: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "import"
    folder.mkdir()
    doc = json.loads(observation.read_text())
    for i in range(3):
        doc["valueQuantity"]["value"] = 5.0 + i
        (folder / f"obs-{i}.json").write_text(json.dumps(doc))
    imported = cli.json("record", "import", str(folder), "--patient", "patient", wallet="lab")
    ids = [r["recordId"] for r in imported["records"]]
    assert len(ids) == 3 and imported["batches"][0]["records"] == 3

    listed = {r["recordId"]: r for r in cli.json("record", "list", "patient")["records"]}
    assert all(listed[i]["batchId"] == imported["batches"][0]["batchId"] for i in ids)
    assert listed[ids[1]]["author"] == world["lab"] and listed[ids[1]]["scopeNames"] == ["lab"]

    read = cli("record", "get", ids[1], wallet="patient")
    assert json.loads(read.stdout)["valueQuantity"]["value"] == 6.0
    assert cli.json("record", "get", ids[1])["batchId"] == imported["batches"][0]["batchId"]
    assert cli.json("record", "verify", *ids, wallet="patient") == [
        {"recordId": i, "ok": True, "problem": None} for i in ids]
    assert all(v["ok"] for v in cli.json("record", "verify", "--patient", "patient", wallet="patient"))

    doc["valueQuantity"]["value"] = 9.9
    observation.write_text(json.dumps(doc))
    amended = cli.json("record", "amend", ids[0], str(observation), wallet="lab")
    after = {r["recordId"]: r for r in cli.json("record", "list", "patient")["records"]}
    assert after[ids[0]]["status"] == "superseded" and after[amended["recordId"]]["previousId"] == ids[0]

    trail = cli.json("audit", "--record", ids[1], wallet="patient")
    assert any(row["name"] == "AccessRequested" and row["actor"] == world["patient"] for row in trail)
