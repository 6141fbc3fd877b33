"""`ehr claim`: deploy a finished ceremony, add a lab result with its claim, prove, verify, refuse."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from eth_account import Account
from web3 import HTTPProvider, Web3

from ehr_client.chain.abi import load_artifact
from ehr_client.dev.claims import LOCAL_MEMBERS, local_claim_setup
from ehr_client.dev.node import AnvilNode
from tests.cli.conftest import Cli, dev_key

HBA1C = {"resourceType": "Observation", "status": "final",
         "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                   "code": "laboratory"}]}],
         "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
         "effectiveDateTime": "2026-03-02", "valueQuantity": {"value": 5.87, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}}
ASKED = "type = Observation and code = http://loinc.org|4548-4 and unit = % and value < 6.5"


@pytest.fixture(scope="module")
def setup_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local throwaway ceremony (run on first use), copied for this home."""
    cached = local_claim_setup().directory
    target = tmp_path_factory.mktemp("claims") / "setup"
    shutil.copytree(cached, target)
    return target


@pytest.fixture(scope="module")
def deployed(cli: Cli, world: dict[str, str], setup_dir: Path) -> str:
    return str(cli("claim", "deploy", "--setup", str(setup_dir), wallet="gov-a").stdout)


def test_lab_adds_patient_proves_verifier_checks(cli: Cli, world: dict[str, str], deployed: str, setup_dir: Path,
                                                 tmp_path: Path) -> None:
    record = tmp_path / "hba1c.json"
    record.write_text(json.dumps(HBA1C))
    added = cli.json("record", "add", "patient", str(record), wallet="lab")
    assert added["claimTxHash"] is not None  # the deployment has a claim registry: the write commits
    proof = tmp_path / "proof.json"
    cli("claim", "prove", added["recordId"], "--predicate", ASKED, "--for", "doctor", "--setup", str(setup_dir),
        "-o", str(proof), wallet="patient")
    assert proof.stat().st_mode & 0o777 == 0o600 and "5.87" not in proof.read_text()
    checked = cli.json("claim", "verify", str(proof), "--expect", ASKED, "--patient", "patient", "--record",
                       wallet="doctor")
    assert checked["valid"] is True and checked["patient"] == world["patient"] and checked["txHash"]
    trail = [(e["name"], e["actor"], e["recordId"]) for e in cli.json("audit", "patient")]
    assert ("ClaimsCommitted", world["lab"], added["recordId"]) in trail
    assert ("ClaimProven", world["doctor"], added["recordId"]) in trail

    refused = cli("claim", "verify", str(proof), "--expect", ASKED.replace("6.5", "6.0"), wallet="doctor", expect=4)
    assert "not what was asked" in refused.stderr and "5.87" not in refused.stderr
    unsatisfied = cli("claim", "prove", added["recordId"], "--predicate", ASKED.replace("6.5", "5.0"), "--for",
                      "doctor", "--setup", str(setup_dir), "-o", str(tmp_path / "no.json"), wallet="patient", expect=1)
    assert "does not satisfy" in unsatisfied.stderr and not (tmp_path / "no.json").exists()
    damaged = tmp_path / "damaged.json"
    damaged.write_text(proof.read_text()[:-40])
    broken = cli("claim", "verify", str(damaged), wallet="doctor", expect=4)
    assert "not a claim proof" in broken.stderr


def test_a_second_claim_registry_is_refused_without_force(cli: Cli, deployed: str, setup_dir: Path) -> None:
    """Records committed since the first deploy live in its registry; a silent replacement orphans them."""
    first = json.loads(Path(cli.env["EHR_DEPLOYMENTS_DIR"], "cli-test.json").read_text())["contracts"]["ClaimRegistry"]
    refused = cli("claim", "deploy", "--setup", str(setup_dir), wallet="gov-a", expect=None)
    assert refused.exit_code != 0 and "already has a claim registry" in refused.output and first in refused.output
    after = json.loads(Path(cli.env["EHR_DEPLOYMENTS_DIR"], "cli-test.json").read_text())["contracts"]["ClaimRegistry"]
    assert after == first


def test_imported_records_carry_claims_the_patient_can_prove(cli: Cli, world: dict[str, str], deployed: str,
                                                             setup_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "import"
    folder.mkdir()
    for n, value in enumerate((5.41, 5.42)):
        (folder / f"hba1c-{n}.json").write_text(json.dumps({**HBA1C, "valueQuantity": {**HBA1C["valueQuantity"],
                                                                                       "value": value}}))
    imported = cli("record", "import", str(folder), "--patient", "patient", wallet="lab")
    assert "claims committed for 2 records" in imported.stdout
    listed = cli.json("record", "import", str(folder), "--patient", "patient", wallet="lab")  # again: nothing new
    record_id = listed["records"][0]["recordId"]
    again = cli("record", "import", str(folder), "--patient", "patient", wallet="lab")
    assert "claims committed for 0 records" in again.stdout
    proof = tmp_path / "proof.json"
    cli("claim", "prove", record_id, "--predicate", ASKED, "--for", "doctor", "--setup", str(setup_dir),
        "-o", str(proof), wallet="patient")
    checked = cli.json("claim", "verify", str(proof), "--expect", ASKED, wallet="doctor")
    assert checked["valid"] is True and checked["patient"] == world["patient"]


def test_recover_commits_again_the_claims_a_chain_lost(cli: Cli, anvil: AnvilNode, world: dict[str, str],
                                                       deployed: str, setup_dir: Path, tmp_path: Path) -> None:
    """The node rolls back to a dump taken before the write: the record and its commitment are gone."""
    w3 = Web3(HTTPProvider(anvil.rpc_url))
    saved = w3.provider.make_request("evm_snapshot", [])["result"]  # type: ignore[arg-type]
    record = tmp_path / "hba1c.json"
    record.write_text(json.dumps({**HBA1C, "valueQuantity": {**HBA1C["valueQuantity"], "value": 5.43}}))
    added = cli.json("record", "add", "patient", str(record), wallet="lab")
    assert added["claimTxHash"] is not None
    w3.provider.make_request("evm_revert", [saved])  # type: ignore[arg-type]
    lost = cli("claim", "prove", added["recordId"], "--predicate", ASKED, "--for", "doctor", "--setup",
               str(setup_dir), "-o", str(tmp_path / "lost.json"), wallet="patient", expect=None)
    assert lost.exit_code != 0 and not (tmp_path / "lost.json").exists()

    recovered = cli.json("record", "recover", wallet="lab")
    outcomes = {(r["kind"], r["id"]): r["outcome"] for r in recovered}
    assert outcomes[("record", added["recordId"])] == "re-anchored"
    assert outcomes[("claim", added["recordId"])] == "committed again"
    assert not [r for r in recovered if r["outcome"] == "refused"]
    again = cli.json("record", "recover", wallet="lab")  # nothing lost any more: no claim line at all
    assert not [r for r in again if r["kind"] == "claim"]
    proof = tmp_path / "proof.json"
    cli("claim", "prove", added["recordId"], "--predicate", ASKED, "--for", "doctor", "--setup", str(setup_dir),
        "-o", str(proof), wallet="patient")
    assert cli.json("claim", "verify", str(proof), "--expect", ASKED, wallet="doctor")["valid"] is True


def test_check_registry_confirms_the_setup_and_refuses_a_registry_with_another_verifier(
        cli: Cli, deployed: str, setup_dir: Path) -> None:
    checked = cli.json("claim", "check-registry", "--setup", str(setup_dir), wallet="doctor")
    assert checked["matches"] is True and checked["members"] == list(LOCAL_MEMBERS)
    deployment_file = Path(cli.env["EHR_DEPLOYMENTS_DIR"], "cli-test.json")
    original = deployment_file.read_text()
    contracts = json.loads(original)["contracts"]
    try:
        # A registry over the same RecordRegistry whose "verifier" is a contract of the attacker's choice.
        rogue = _deploy_rogue_registry(cli, contracts["RecordRegistry"], verifier=contracts["KeyRegistry"])
        deployment_file.write_text(json.dumps({**json.loads(original), "contracts": {**contracts,
                                                                                    "ClaimRegistry": rogue}}))
        refused = cli("claim", "check-registry", "--setup", str(setup_dir), wallet="doctor", expect=4)
        assert "is not the verifier of the setup" in refused.stderr
        deployment_file.write_text(json.dumps({**json.loads(original), "contracts": {
            **contracts, "ClaimRegistry": contracts["KeyRegistry"]}}))  # not a claim registry at all
        assert cli("claim", "check-registry", "--setup", str(setup_dir), wallet="doctor", expect=None).exit_code != 0
    finally:
        deployment_file.write_text(original)


def _deploy_rogue_registry(cli: Cli, records: str, *, verifier: str) -> str:
    w3 = Web3(HTTPProvider(cli.env["EHR_RPC_URL"]))
    artifact = load_artifact("ClaimRegistry")
    deployer = Account.from_key(dev_key(9))
    tx = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"]).constructor(
        records, verifier).build_transaction({"from": deployer.address, "nonce": w3.eth.get_transaction_count(
            deployer.address), "chainId": w3.eth.chain_id})
    sent = w3.eth.send_raw_transaction(deployer.sign_transaction(tx).raw_transaction)
    return str(w3.eth.wait_for_transaction_receipt(sent, timeout=30)["contractAddress"])
