"""scripts/deploy.py, run the way an operator runs it, against the session's Anvil."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _deploy(chain, out: Path, *extra: str) -> subprocess.CompletedProcess:
    ape = Path(sys.executable).parent / "ape"
    return subprocess.run(
        [str(ape), "run", "deploy", "--network", chain.provider.uri, "--account", "TEST::0", "--out", str(out),
         "--governor", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
         "--governor", "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", "--threshold", "2", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=os.environ.copy(),
    )


def test_deploy_writes_file_and_refuses_to_clobber_a_live_deployment(chain, project, tmp_path):
    out = tmp_path / "deployments" / "local.json"
    first = _deploy(chain, out)
    assert first.returncode == 0, first.stderr + first.stdout
    data = json.loads(out.read_text())
    assert data["chainId"] == chain.chain_id and data["threshold"] == 2
    assert set(data["contracts"]) == {"Consortium", "KeyRegistry", "RecordRegistry", "ConsentManager"}
    assert data["compiler"] == "solc 0.8.28" and len(data["abiHash"]) == 64
    registry = project.RecordRegistry.at(data["contracts"]["RecordRegistry"])
    assert registry.consentManager() == data["contracts"]["ConsentManager"]
    consortium = project.Consortium.at(data["contracts"]["Consortium"])
    assert consortium.threshold() == 2 and len(consortium.governors()) == 2

    second = _deploy(chain, out)
    assert second.returncode != 0
    assert "live deployment" in second.stdout + second.stderr
    assert json.loads(out.read_text()) == data

    forced = _deploy(chain, out, "--force")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(out.read_text())["contracts"] != data["contracts"]
