"""Wallet-derived keys and Umbral across Python and JS: portal/src/keys.js and portal/src/umbral.js
run in real node subprocesses; the `ehr` CLI through its own Anvil and world (tests/cli/conftest.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import CAST, anvil, cli, dev_key, home, lab_record, observation, world  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
JS = Path(__file__).parent / "js"


def run_node(script: str, request: dict[str, Any]) -> dict[str, Any]:
    """Run tests/portal_keys/js/<script> with `request` as JSON on stdin; its JSON answer."""
    node = shutil.which("node")
    if node is None or not (REPO / "node_modules" / "@noble" / "curves").is_dir():
        pytest.fail("node and the npm packages are needed: run `npm install` in the repository (package.json pins them)")
    done = subprocess.run([node, str(JS / script)], input=json.dumps(request), capture_output=True, text=True,
                          cwd=REPO, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


@pytest.fixture(scope="session")
def keys_js() -> Any:
    """Call tests/portal_keys/js/keys_cli.mjs (portal/src/keys.js and third-party signers)."""
    return lambda request: run_node("keys_cli.mjs", request)


def patient_key() -> str:
    """The CLI world's patient wallet key (Anvil's dev mnemonic), as a browser wallet would hold it."""
    return "0x" + dev_key(CAST.index("patient")).removeprefix("0x")
