"""`ehr record import` killed between appending a record's sealed package to its pack and indexing it."""

from __future__ import annotations

import json
from pathlib import Path

from ehr_client.package import parse_header

from tests.redteam6.conftest import Cli, age_packs, ehr_killed_at_first_open_of, pack_files, store_root
from tests.batch.conftest import observation

UNREACHABLE_CUSTODIAN = "http://127.0.0.1:9"  # none holds fragments of these records: erasure goes on without them


def _folder(tmp_path: Path, first_value: int, count: int) -> Path:
    folder = tmp_path / "import"
    folder.mkdir()
    for i in range(count):
        (folder / f"obs-{i}.json").write_text(json.dumps(observation(first_value + i)))
    return folder


def test_an_erased_record_leaves_no_package_behind_after_a_crash_between_pack_and_index(
        cli: Cli, world: dict[str, str], home: Path, tmp_path: Path) -> None:
    folder = _folder(tmp_path, 6100, 2)
    index = store_root(home) / "packs" / "index"
    before = set(pack_files(home))

    killed = ehr_killed_at_first_open_of(cli, index, "record", "import", str(folder), "--patient", "patient",
                                         wallet="lab")
    assert killed.returncode != 0
    orphaned = [p for p in pack_files(home) if p not in before and any(p.read_bytes())]
    assert len(orphaned) == 1, "the kill should land after the first package reached its pack"
    package = orphaned[0].read_bytes()[48:]  # after the pack's own header (docs/FORMAT.md)
    assert package.startswith(b"EHRP"), "a whole sealed record package (header, wrapped keys)"

    imported = cli.json("record", "import", str(folder), "--patient", "patient", wallet="lab")
    assert len(imported["records"]) == 2
    header, _ = parse_header(package)
    assert header.binding is not None
    assert header.binding.record_id == bytes.fromhex(imported["records"][0]["recordId"][2:]), (
        "the orphan is a second sealing of the record the resumed import anchored")
    assert header.wrap_for(bytes.fromhex(world["lab"][2:])), "its data key is sealed to the lab (and the patient)"
    for record in imported["records"]:
        cli("record", "erase", record["recordId"], "--yes", "--custodian", UNREACHABLE_CUSTODIAN, wallet="patient")
    age_packs(home, 3 * 24 * 3600)
    cli("storage", "gc", "--delete", "--grace", "1h", wallet="lab")

    assert not any(orphaned[0].read_bytes()[48:]), "the erased record's first sealed package is still on disk"
