"""`ehr storage check|repair` on records written through a FragmentedStore of LocalStore nodes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from ehr_client.chain.client import ChainClient
from ehr_client.cli import storage
from ehr_client.cli._context import AppContext, Settings
from ehr_client.cli._errors import EXIT_DOWN, EXIT_ERROR, EXIT_OK, ErrorReportingGroup
from ehr_client.client import EHRClient, Identity, WriteResult
from ehr_client.storage.cid import Cid
from ehr_client.storage.fragmented import FragmentedStore
from ehr_client.storage.local import LocalStore
from ehr_client.storage.nodes import CONFIG_NAME, load_storage_config


def _config(home: Path) -> Path:
    lines = ["k = 3", "n = 5", "segment_size = 3072"]
    for node in ("n0", "n1", "n2", "n3", "n4", "spare"):
        lines += ["[[nodes]]", f'id = "{node}"', 'kind = "local"', f'path = "nodes/{node}"']
    path = home / CONFIG_NAME
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    _config(tmp_path)
    return tmp_path


@pytest.fixture
def written(home: Path, suite: ChainClient, ids: dict[str, Identity], observation: dict[str, Any]
            ) -> tuple[EHRClient, WriteResult]:
    store = FragmentedStore.from_config(load_storage_config(home / CONFIG_NAME))
    patient = EHRClient(suite, store, ids["patient"], state_dir=home / "state")
    patient.register_patient()
    patient.publish_key()
    # Content of its own: ids derive from content, and chain state from other modules' session
    # fixtures can outlive Ape's per-test snapshots, so the same observation could be on chain already.
    unique = {**observation, "note": [{"text": f"written for {home.name}"}]}
    return patient, patient.add_record(patient.address, unique)


@pytest.fixture
def run(home: Path, suite: ChainClient) -> Any:
    root = typer.Typer(cls=ErrorReportingGroup)

    @root.callback()
    def _root(ctx: typer.Context) -> None:
        ctx.obj = AppContext(Settings(home=home), _chain=suite)

    root.add_typer(storage.app, name="storage")
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(root, ["storage", *args])

    return invoke


def _node_dir(home: Path, patient: EHRClient, cid: str, index: int) -> Path:
    store = FragmentedStore.from_config(load_storage_config(home / CONFIG_NAME))
    node = store.nodes[store.manifest(Cid(cid)).fragments[index].node]
    assert isinstance(node, LocalStore)
    return node.root


def test_check_reports_every_fragment_intact(run: Any, written: tuple[EHRClient, WriteResult]) -> None:
    patient, result = written
    outcome = run("check", "--patient", patient.address, "--json")
    assert outcome.exit_code == EXIT_OK, outcome.output
    [row] = json.loads(outcome.stdout)
    assert row["recordId"] == "0x" + result.record_id.hex() and row["cid"] == result.cid
    assert (row["status"], row["intact"], row["n"], row["k"], row["manifestCopies"]) == ("ok", 5, 5, 3, 6)


def test_check_flags_a_wiped_node_and_repair_rewrites_its_fragment_in_place(
    run: Any, home: Path, written: tuple[EHRClient, WriteResult]
) -> None:
    patient, result = written
    record = "0x" + result.record_id.hex()
    wiped = _node_dir(home, patient, result.cid, 1)
    shutil.rmtree(wiped)

    degraded = run("check", record)
    assert degraded.exit_code == EXIT_ERROR
    assert "degraded" in degraded.stdout and "run `ehr storage repair`" in degraded.output

    repaired = run("repair", record, "--json")
    assert repaired.exit_code == EXIT_OK, repaired.output
    [row] = json.loads(repaired.stdout)
    assert row["intactBefore"] == 4 and row["intact"] == 5 and row["status"] == "ok"
    assert row["restored"] == [{"index": 1, "node": wiped.name}]
    assert row["manifestCopiesRestored"] == [wiped.name]
    assert patient.read_record(result.record_id).info.cid == result.cid


def test_check_exits_5_when_fewer_than_k_fragments_remain(
    run: Any, home: Path, written: tuple[EHRClient, WriteResult]
) -> None:
    patient, result = written
    for index in (0, 2, 4):
        shutil.rmtree(_node_dir(home, patient, result.cid, index))
    outcome = run("check", "0x" + result.record_id.hex())
    assert outcome.exit_code == EXIT_DOWN
    assert "unrecoverable" in outcome.stdout and "cannot be rebuilt now" in outcome.output


def test_check_without_a_config_file_says_where_it_looked(run: Any, home: Path) -> None:
    (home / CONFIG_NAME).unlink()
    outcome = run("check", "0x" + "11" * 32)
    assert outcome.exit_code == EXIT_ERROR
    assert "no storage node configuration at" in outcome.output

