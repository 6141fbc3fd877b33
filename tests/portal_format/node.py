"""Run portal/src/format.js in a real Node process (harness.mjs) and load the vectors Python wrote."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HARNESS = Path(__file__).with_name("harness.mjs")
VECTORS = ROOT / "tests" / "vectors" / "format"
NODE_DEADLINE_SECONDS = 600


class NodeMissing(RuntimeError):
    pass


def run_node(ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One Node process runs every op in order; a result per op (outputs, or error name and message)."""
    node = shutil.which("node")
    if node is None:
        raise NodeMissing("node (18 or later) is not on PATH; the portal's format tests need it")
    proc = subprocess.run([node, str(HARNESS)], input=json.dumps({"ops": ops}).encode(), capture_output=True,
                          cwd=ROOT, timeout=NODE_DEADLINE_SECONDS, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"the Node harness failed ({proc.returncode}): {proc.stderr.decode()[-4000:]}")
    results: list[dict[str, Any]] = json.loads(proc.stdout)["results"]
    assert len(results) == len(ops)
    return results


def load_vectors(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / f"{name}.json").read_text())
    return data


def generator() -> ModuleType:
    """scripts/make_format_vectors.py as a module: its Python read path replays the vectors."""
    spec = importlib.util.spec_from_file_location("make_format_vectors", ROOT / "scripts" / "make_format_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
