"""A batch's pack damaged at its end (cut short by a crash, a full disk or a bad copy): the manifest is the
last blob each batch appends, so the damage lands on it and spares the records before it. (A finding,
fixed: gc deleted the batch's intact records; it now stops, deletes nothing and names what to restore.)"""

from __future__ import annotations

import json
from pathlib import Path

from ehr_client.records import canonicalize
from tests.batch.conftest import observation
from tests.redteam6.conftest import Cli, age_packs, pack_files


def test_gc_keeps_the_intact_records_of_a_batch_whose_pack_lost_its_last_byte(
        cli: Cli, world: dict[str, str], home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "import"
    folder.mkdir()
    for i in range(2):
        (folder / f"obs-{i}.json").write_text(json.dumps(observation(6500 + i)))
    before = set(pack_files(home))
    records = [r["recordId"] for r in
               cli.json("record", "import", str(folder), "--patient", "patient", wallet="lab")["records"]]
    (pack,) = [p for p in pack_files(home) if p not in before]
    whole = pack.read_bytes()
    with open(pack, "r+b") as f:
        f.truncate(len(whole) - 1)  # the manifest's last byte: the records before it are untouched
    age_packs(home, 3 * 24 * 3600)

    stopped = cli("storage", "gc", "--delete", "--grace", "1h", wallet="lab", expect=4)  # deletes nothing, says why
    assert "garbage collection stopped" in stopped.output and "Restore" in stopped.output

    with open(pack, "r+b") as f:  # the operator restores the lost byte (the manifest) from a replica
        f.seek(len(whole) - 1)
        f.write(whole[-1:])
    for i, record in enumerate(records):
        out = tmp_path / f"read-{i}.json"
        cli("record", "get", record, "--out", str(out), wallet="patient")
        assert out.read_bytes() == canonicalize(observation(6500 + i))
