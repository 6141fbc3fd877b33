"""`ehr record validate FILE|DIR...`: check FHIR R4 JSON files offline (no chain, key or wallet).

Every ``*.json`` file in a directory (recursively) is checked; the exit code is 0 only if every
file is valid FHIR R4 (4.0.1), else 1 (the CLI's code for an invalid record; 2 stays usage).
Problems name the element path and the rule, never the values, except codes refused by a
required binding.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from ehr_client.cli._errors import EXIT_ERROR, EXIT_OK
from ehr_client.cli._output import JsonFlag, err, out, print_json
from ehr_client.errors import InvalidRecord
from ehr_client.records import parse_json
from ehr_client.records.fhir import FHIR_VERSION, fhir_problems

__all__ = ["validate"]

Paths = Annotated[list[Path], typer.Argument(exists=True, readable=True, help="FHIR JSON files or folders of them.")]
Invariants = Annotated[bool, typer.Option("--invariants/--no-invariants",
                                          help="Also evaluate the FHIRPath invariants (default on).")]


def validate(paths: Paths, json_: JsonFlag = False, invariants: Invariants = True) -> None:
    """Check FHIR R4 (4.0.1) JSON files against the specification, offline; exit 0 only if all pass."""
    results = [_check(path, invariants) for path in _files(paths)]
    if json_:
        print_json(results)
    else:
        for result in results:
            if result["ok"]:
                out().print(f"ok      {result['path']} ({result['resourceType']})")
            else:
                out().print(f"invalid {result['path']} ({result['resourceType'] or 'no resourceType'})")
                for problem in result["problems"]:
                    out().print(f"        {problem['path']}: {problem['rule']}", markup=False)
        bad = sum(not result["ok"] for result in results)
        err().print(f"{len(results) - bad} valid, {bad} invalid, checked against FHIR R4 {FHIR_VERSION}")
    if not results or not all(result["ok"] for result in results):
        if not results:
            err().print("no *.json file found in the paths given")
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(EXIT_OK)


def _files(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(item for item in path.rglob("*.json") if item.is_file())
        else:
            yield path


def _check(path: Path, invariants: bool) -> dict[str, Any]:
    resource_type: str | None = None
    try:
        raw = path.read_bytes()
        data = parse_json(raw)
        found = data.get("resourceType") if isinstance(data, dict) else None
        resource_type = found if isinstance(found, str) else None
        problems = [{"path": p.path, "rule": p.rule} for p in fhir_problems(raw, invariants=invariants)]
    except InvalidRecord as exc:
        problems = [{"path": "$", "rule": str(exc)}]
    except OSError as exc:
        problems = [{"path": "$", "rule": f"cannot read the file: {exc.strerror or type(exc).__name__}"}]
    return {"path": str(path), "resourceType": resource_type, "ok": not problems, "problems": problems}
