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


FILES = ("wrap", "envelope", "package", "keyshare", "seal")


def ops_for(kind: str, case: dict[str, Any], negative: bool) -> list[dict[str, Any]]:
    """The harness ops that check one vector case (test_js_reads_python_vectors says what they must return)."""
    if kind == "wrap":
        secret = case["recipient_secret"]
        ops = [{"op": "unwrap", "wrapped": case["wrapped"], "secret": secret, "associated_data": case["associated_data"]}]
        if not negative:
            ops += [{"op": "public_key", "secret": secret}, {"op": "associated_data", "binding": case["binding"]}]
        return ops
    if kind == "envelope":
        ops = [{"op": "decrypt_envelope", "envelope": case["envelope"], "data_key": case["data_key"],
                "associated_data": case["associated_data"]}]
        if not negative:
            ops.append({"op": "associated_data", "binding": case["binding"]})
        return ops
    if kind == "package":
        opened = {"op": "open_package", "package": case["package"], "reader": case["reader"],
                  "x25519_secrets": case["x25519_secrets"], "expected": case["expected"]}
        return [opened] if negative else [{"op": "parse_package", "package": case["package"]}, opened]
    if kind == "seal":
        return [{"op": "open_sealed", "sealed": case["sealed"], "secret": case["recipient_secret"],
                 "associated_data": case["associated_data"]}]
    assert kind == "keyshare"
    share_hex = case.get("share_hex") or case["share"].encode().hex()
    if negative and "binding" not in case:
        return [{"op": "parse_keyshare", "share_hex": share_hex}]
    if negative:
        return [{"op": "share_data_key", "share_hex": share_hex, "reader": case["reader"],
                 "x25519_secrets": case["x25519_secrets"], "binding": case["binding"]}]
    return [{"op": "parse_keyshare", "share_hex": share_hex}] + [
        {"op": "share_data_key", "share_hex": share_hex, "reader": case["reader"],
         "x25519_secrets": case["x25519_secrets"], "binding": b} for b in case["bindings"]]


def all_cases() -> list[tuple[str, str, bool, dict[str, Any]]]:
    out = []
    for kind in FILES:
        vectors = load_vectors(kind)
        out += [(kind, c["name"], False, c) for c in vectors["cases"]]
        out += [(kind, c["name"], True, c) for c in vectors["negative"]]
    return out
