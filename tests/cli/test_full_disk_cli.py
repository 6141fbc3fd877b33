"""`ehr record add` on a full disk exits 5 (storage) with a message saying what to do, and the same
command run once space is back writes the record once."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Cli
from tests.small_disk import SmallDisk, small_disk  # noqa: F401  (fixture)


def test_record_add_on_a_full_disk_exits_5_and_lands_once_when_space_returns(
    cli: Cli, world: dict[str, str], small_disk: SmallDisk, tmp_path: Path,
) -> None:
    record = tmp_path / "full-disk.json"
    record.write_text(json.dumps({"resourceType": "Observation", "status": "final",
                                  "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                            "observation-category", "code": "laboratory"}]}],
                                  "code": {"text": "written on a full disk"}, "valueQuantity": {"value": 7.7}}))
    on_disk = {"EHR_STORE_DIR": str(small_disk.root / "store")}
    before = cli.json("record", "list", "patient", wallet="patient")["records"]
    small_disk.fill()

    failed = cli("record", "add", "patient", str(record), wallet="lab", env=on_disk, expect=5)

    assert "disk full" in failed.stderr and "Free some space" in failed.stderr
    assert cli.json("record", "list", "patient", wallet="patient")["records"] == before  # nothing anchored
    small_disk.free()
    first = json.loads(cli("record", "add", "patient", str(record), "--json", wallet="lab", env=on_disk).stdout)
    again = json.loads(cli("record", "add", "patient", str(record), "--json", wallet="lab", env=on_disk).stdout)
    assert again["recordId"] == first["recordId"]
    after = [r["recordId"] for r in cli.json("record", "list", "patient", wallet="patient")["records"]]
    assert after == [r["recordId"] for r in before] + [first["recordId"]]  # once
