"""The `ehr` command as the lab and the patient: records the lab imports in one batch (their data keys
wrapped under one ephemeral key per reader) read back through `ehr record get`, each as its own."""

from __future__ import annotations

import json
from pathlib import Path

from ehr_client.records import canonicalize
from tests.batch.conftest import observation
from tests.cli.conftest import Cli, anvil, cli, home, world  # noqa: F401  (fixtures)


def test_the_patient_reads_each_record_of_a_batch_through_the_cli(
        cli: Cli, world: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "import"
    folder.mkdir()
    for i in range(3):
        (folder / f"obs-{i}.json").write_text(json.dumps(observation(300 + i)))
    imported = cli.json("record", "import", str(folder), "--patient", "patient", wallet="lab")
    assert len(imported["batches"]) == 1

    for i, record in enumerate(imported["records"]):
        out = tmp_path / f"read-{i}.json"
        cli("record", "get", record["recordId"], "--out", str(out), wallet="patient")
        assert out.read_bytes() == canonicalize(observation(300 + i))
