"""`ehr record validate`: offline check of FHIR files (no chain, key or wallet)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from ehr_client.cli import app

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "fhir-r4-examples"


def _run(*args: str, home: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--home", str(home), "record", "validate", *args])
    return result.exit_code, result.stdout


def test_valid_files_and_folders_exit_0(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("patient-example.json", "observation-example.json", "bundle-example.json"):
        shutil.copy(EXAMPLES / name, folder / name)

    code, output = _run(str(folder), str(EXAMPLES / "condition-example.json"), home=tmp_path / "home")

    assert code == 0
    assert output.count("ok ") == 4
    assert not (tmp_path / "home").exists()  # no wallet, key or chain state was touched


def test_one_invalid_file_exits_1_with_path_and_rule_as_json(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"resourceType": "Observation", "status": "banana", "code": {"text": "x"}, "foo": 1}))
    good = EXAMPLES / "patient-example.json"

    code, output = _run("--json", str(good), str(bad), home=tmp_path / "home")

    assert code == 1
    assert json.loads(output) == [
        {"path": str(good), "resourceType": "Patient", "ok": True, "problems": []},
        {"path": str(bad), "resourceType": "Observation", "ok": False, "problems": [
            {"path": "Observation.status",
             "rule": "'banana' is not in the required value set http://hl7.org/fhir/ValueSet/observation-status"},
            {"path": "Observation.foo", "rule": "is not an element of FHIR R4 Observation: remove it or fix the spelling"},
        ]},
    ]


def test_file_that_is_not_json_is_reported_not_crashed(tmp_path: Path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_bytes(b"{\"resourceType\": ")

    code, output = _run("--json", str(bad), home=tmp_path / "home")

    assert code == 1
    [result] = json.loads(output)
    assert (result["ok"], result["resourceType"], result["problems"][0]["path"]) == (False, None, "$")
    assert "not valid JSON" in result["problems"][0]["rule"]


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    code, _ = _run(str(tmp_path / "absent.json"), home=tmp_path / "home")

    assert code == 2


def test_folder_without_json_files_is_not_a_pass(tmp_path: Path) -> None:
    code, _ = _run(str(tmp_path), home=tmp_path / "home")

    assert code == 1
