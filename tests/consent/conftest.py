"""Consent tests: the contract through Ape's fixtures (tests/conftest.py), the `ehr` CLI through
its own Anvil and world (tests/cli/conftest.py), and third-party signers through node."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import CAST, anvil, cli, dev_key, home, lab_record, observation, world  # noqa: F401

JS_SIGNERS = Path(__file__).parent / "js" / "signers.mjs"
REPO = Path(__file__).resolve().parents[2]


def patient_key() -> str:
    """The CLI world's patient wallet key (Anvil's dev mnemonic), as a wallet would hold it."""
    return "0x" + dev_key(CAST.index("patient")).removeprefix("0x")


@pytest.fixture(scope="session")
def js_signers() -> Any:
    """Run tests/consent/js/signers.mjs: signatures by eth-sig-util, ethers and viem, and what
    each recovers from a given signature."""
    node = shutil.which("node")
    if node is None or not (REPO / "node_modules" / "viem").is_dir():
        pytest.fail("node and the npm signers are needed: run `npm install` in the repository (package.json pins them)")

    def run(typed_data: dict[str, Any], private_key: str, signature: str | None = None) -> dict[str, Any]:
        request = {"typedData": typed_data, "privateKey": private_key, "signature": signature}
        done = subprocess.run([node, str(JS_SIGNERS)], input=json.dumps(request), capture_output=True, text=True,
                              cwd=REPO, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    return run
