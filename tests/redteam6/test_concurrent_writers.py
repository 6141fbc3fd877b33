"""Two `ehr record import` processes (two authors) appending to one store's packs and index at once, while
`ehr storage gc --delete` runs and the patient erases an earlier batched record beside them: every record of
both lands whole and readable, and the erased one's package is gone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ehr_client.records import canonicalize
from ehr_client.storage import LocalStore
from ehr_client.storage.cid import cid_from_digest
from tests.batch.conftest import observation
from tests.redteam6.conftest import Cli, index_entries, store_root

RECORDS = 60
BATCH = 8
CONDITION = Path(__file__).parents[1] / "data" / "fhir-r4-examples" / "condition-example.json"


def _holds(home: Path, entry: tuple[bytes, bytes, int, int], record_id: str) -> bool:
    """Whether the entry's range of its pack holds the package bound to `record_id`."""
    _, pack, offset, length = entry
    with open(store_root(home) / "packs" / f"{pack.hex()}.pack", "rb") as f:
        f.seek(offset)
        return bytes.fromhex(record_id[2:]) in f.read(min(length, 128))


def _ehr(cli: Cli, *args: str, wallet: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ehr_client.cli", "--wallet", wallet, *args],
                            env={**os.environ, **cli.env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_imports_a_gc_and_an_erasure_at_once_leave_every_record_whole(
        cli: Cli, world: dict[str, str], home: Path, tmp_path: Path) -> None:
    labs, conditions = tmp_path / "labs", tmp_path / "conditions"
    labs.mkdir()
    conditions.mkdir()
    condition = json.loads(CONDITION.read_text())
    for i in range(RECORDS):
        (labs / f"obs-{i}.json").write_text(json.dumps(observation(6600 + i)))
        (conditions / f"cond-{i}.json").write_text(json.dumps({**condition, "id": f"redteam6-{i}"}))
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "obs.json").write_text(json.dumps(observation(6599)))
    (erased,) = cli.json("record", "import", str(earlier), "--patient", "patient", wallet="lab")["records"]
    (erased_entry,) = [e for e in index_entries(home) if e[3] != 0xFFFFFFFF and _holds(home, e, erased["recordId"])]
    known = len(index_entries(home))

    runs = [_ehr(cli, "record", "import", str(labs), "--patient", "patient", "--batch-size", str(BATCH), "--json",
                 wallet="lab"),
            _ehr(cli, "record", "import", str(conditions), "--patient", "patient", "--batch-size", str(BATCH),
                 "--json", wallet="hospital"),
            _ehr(cli, "storage", "gc", "--delete", "--grace", "1h", wallet="lab"),
            _ehr(cli, "record", "erase", erased["recordId"], "--yes", "--custodian", "http://127.0.0.1:9",
                 wallet="patient")]
    finished = [run.communicate(timeout=600) for run in runs]
    for run, (_, stderr) in zip(runs, finished):
        assert run.returncode == 0, stderr

    added = [e for e in index_entries(home)[known:] if e[0] != erased_entry[0]]
    assert all(length != 0xFFFFFFFF for _, _, _, length in added), "nothing of theirs was removed"
    assert not _holds(home, erased_entry, erased["recordId"]), "the erased record's package was punched out"
    batches = -(-RECORDS // BATCH)
    assert len(added) == 2 * (RECORDS + batches)
    fresh = LocalStore(store_root(home))
    for digest, _, _, _ in added:
        fresh.get(cid_from_digest(digest))  # checked against its CID
    last = json.loads(finished[0][0])["records"][-1]
    out = tmp_path / "last.json"
    cli("record", "get", last["recordId"], "--out", str(out), wallet="patient")
    assert out.read_bytes() == canonicalize(json.loads((labs / last["file"]).read_text()))
