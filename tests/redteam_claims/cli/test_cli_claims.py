"""`ehr record recover` now also commits claims for every acknowledged record that is on chain and has
none, whether or not the chain lost anything. Acted out with the CLI on a real Anvil."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ehr_client.dev.claims import local_claim_setup
from tests.cli.conftest import Cli

HBA1C = {"resourceType": "Observation", "status": "final",
         "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                   "code": "laboratory"}]}],
         "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
         "effectiveDateTime": "2026-03-02",
         "valueQuantity": {"value": 7.91, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}}
DIABETES = {"resourceType": "Condition", "subject": {"reference": "Patient/p"},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]},
            "onsetDateTime": "2025-11-02"}


@pytest.fixture(scope="module")
def written_before_registry(cli: Cli, world: dict[str, str],
                            tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The lab and the hospital each write a record while the deployment has no claim registry; then
    the consortium deploys one. Record ids by author."""
    folder = tmp_path_factory.mktemp("rc-recover")
    ids = {}
    for author, resource in (("lab", HBA1C), ("hospital", DIABETES)):
        record = folder / f"{author}.json"
        record.write_text(json.dumps(resource))
        added = cli.json("record", "add", "patient", str(record), wallet=author)
        assert added["claimTxHash"] is None  # no registry yet: nothing attested
        ids[author] = str(added["recordId"])
    setup = folder / "setup"
    shutil.copytree(local_claim_setup().directory, setup)
    cli("claim", "deploy", "--setup", str(setup), wallet="gov-a")
    return ids


def test_recover_with_nothing_lost_attests_a_record_its_author_never_attested(
        cli: Cli, written_before_registry: dict[str, str]) -> None:
    """Nothing was lost; recover should report every write `on chain` and send nothing. Instead it
    commits, now, a claim for a record that never had one: an attestation the lab never made."""
    recovered = cli.json("record", "recover", wallet="hospital")
    claim_lines = [r for r in recovered if r["kind"] == "claim"]
    assert [r["outcome"] for r in recovered if r["kind"] == "record"] == ["on chain"]
    assert claim_lines == [], f"recover sent claim commitments although the chain lost nothing: {claim_lines}"


def test_recover_reports_loss_and_fails_when_only_the_grant_was_revoked(
        cli: Cli, world: dict[str, str], written_before_registry: dict[str, str]) -> None:
    """The patient ends the lab's access (its normal right). The chain lost nothing, yet every later
    `ehr record recover` of the lab exits 4 (data loss) with a `refused` line: an operator cannot tell
    it from a real loss, and scripts that page on exit 4 page forever."""
    cli("revoke", "lab", wallet="patient")
    try:
        result = cli("record", "recover", "--json", wallet="lab", expect=None)
        outcomes = json.loads(result.stdout) if result.stdout.strip() else []
        refused = [r for r in outcomes if r["outcome"] == "refused"]
        assert result.exit_code == 0 and refused == [], (
            f"recover exits {result.exit_code} with {refused} although the chain lost nothing")
    finally:
        cli("grant", "lab", "--scopes", "lab", "--access", "amend", "--for", "7d", wallet="patient")


_PEAK_RSS = ("import resource, subprocess, sys\n"
             "done = subprocess.run(sys.argv[1:], capture_output=True)\n"
             "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")


def _recover_peak_kib(cli: Cli) -> int:
    """Peak resident memory (KiB) of one `ehr record recover` run as the lab, in its own process."""
    ehr = str(Path(sys.executable).parent / "ehr")
    done = subprocess.run([sys.executable, "-c", _PEAK_RSS, ehr, "--wallet", "lab", "record", "recover", "--json"],
                          env={**os.environ, **cli.env}, capture_output=True, text=True, check=True)
    code, peak = done.stdout.split()
    assert code in ("0", "4"), done
    return int(peak)


def test_recover_loads_every_opaque_file_the_author_wrote_into_memory(
        cli: Cli, written_before_registry: dict[str, str], tmp_path: Path) -> None:
    """Opaque files are written in bounded memory and never carry claims (`record add --category` commits
    none). Yet recover, to look for claims, fetches each of the author's records whole into memory
    before it reads the media type: its memory grows with the largest file the author ever wrote."""
    big = tmp_path / "genome.vcf"
    size = 192 << 20
    with big.open("wb") as handle:
        block = os.urandom(1 << 20)
        for _ in range(size >> 20):
            handle.write(block)
    cli("record", "add", "patient", str(big), "--category", "genomic", "--scope", "lab", wallet="lab")
    big.unlink()
    # The same recover, once without the claim registry in the deployment file (recover as it was) and
    # once with it: the difference is what the claim restore costs.
    deployment = Path(cli.env["EHR_DEPLOYMENTS_DIR"], "cli-test.json")
    original = deployment.read_text()
    without = json.loads(original)
    del without["contracts"]["ClaimRegistry"]
    try:
        deployment.write_text(json.dumps(without))
        baseline = _recover_peak_kib(cli)
    finally:
        deployment.write_text(original)
    peak = _recover_peak_kib(cli)
    grown = (peak - baseline) * 1024
    assert grown < size // 4, (f"with a claim registry, recover's peak memory is {grown >> 20} MiB higher, for one "
                               f"{size >> 20} MiB opaque record that can carry no claim")


def test_one_record_with_an_overflowing_value_stops_claims_for_the_rest_of_an_import(
        cli: Cli, world: dict[str, str], written_before_registry: dict[str, str], tmp_path: Path) -> None:
    """`1e400` is valid JSON and the FHIR check accepts it (canonical `1E+400`); the claim extractor turns it
    into float('inf') and int() raises OverflowError, which nothing catches. The import is anchored, then
    the claim commit dies on that file: the files after it never get claims, importing again dies at the
    same place, and so does every later `ehr record recover` of the lab."""
    folder = tmp_path / "import"
    folder.mkdir()
    for name, value in (("a", "5.11"), ("b", "1e400"), ("c", "5.13")):
        text = json.dumps({**HBA1C, "valueQuantity": {**HBA1C["valueQuantity"], "value": 0}})
        (folder / f"{name}.json").write_text(text.replace('"value": 0', f'"value": {value}'))
    imported = cli("record", "import", str(folder), "--patient", "patient", wallet="lab", expect=None)
    again = cli("record", "import", str(folder), "--patient", "patient", wallet="lab", expect=None)
    recovered = cli("record", "recover", "--json", wallet="lab", expect=None)
    crashes = {name: repr(result.exception) for name, result in
               (("import", imported), ("import again", again), ("recover", recovered))
               if result.exception is not None and not isinstance(result.exception, SystemExit)}
    assert crashes == {}, f"untyped crashes: {crashes}"
    assert "claims committed for 2 records" in imported.stdout + again.stdout
