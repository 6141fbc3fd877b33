"""The third demo story: the patient proves "HbA1c below 6.5 %" to an employer without showing it.

`run_claims_story` expects the first story's suite (lab admitted, patient registered with a key).
It uses the local throwaway ceremony (`ehr_client.dev.claims`; run once per circuit version, about
a minute or two), deploys its verifier and a ClaimRegistry, and never prints the value it hides.
"""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from ehr_client.chain.client import ChainClient
from ehr_client.claims import ClaimProof, ClaimRegistry, Claims, Predicate, deploy_claim_registry
from ehr_client.client import EHRClient, Identity
from ehr_client.dev.claims import LOCAL_MEMBERS, local_claim_setup, local_claim_setup_ready
from ehr_client.errors import ClaimProofRejected, ClaimUnsatisfied, EHRError
from ehr_client.records import Scope
from ehr_client.storage import BlobStore

DAY = 86_400


def hba1c(day: str) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4", "display": "Hemoglobin A1c"}]},
            "effectiveDateTime": day,
            "valueQuantity": {"value": 5.9, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}}


def run_claims_story(console: Console, chain: ChainClient, store: BlobStore, ids: dict[str, Identity], *,
                     workdir: Path) -> None:
    def ok(text: str) -> None:
        console.print(f"  [green]✓[/] {text}")

    if not local_claim_setup_ready():
        console.print(f"  running the local Groth16 ceremony once ({', '.join(LOCAL_MEMBERS)} contribute; a minute "
                      "or two; reused by later demos)")
    setup = local_claim_setup()
    ok(f"setup: circuit {setup.build.key}, every contribution verified")
    registry = ClaimRegistry(chain, deploy_claim_registry(chain, ids["governor-a"].account, setup))
    ok(f"governor-a deploys the setup's Groth16 verifier and ClaimRegistry {registry.address}")

    def person(name: str) -> Claims:
        return Claims(EHRClient(chain, store, ids[name], state_dir=workdir / "claims" / name), registry, setup)

    patient, lab, employer = person("patient"), person("lab"), person("stranger")
    today = datetime.datetime.fromtimestamp(chain.now(), tz=datetime.timezone.utc).date()
    patient.client.grant(lab.client.address, int(Scope.LAB), access="amend", expires_at=chain.now() + DAY,
                         share_keys=False)
    written = lab.add_record(patient.client.address, hba1c(today.isoformat()))
    if written.commit is None:
        raise EHRError("the lab's HbA1c result carried no claim commitment")
    ok(f"lab writes an HbA1c result and commits to its claim ({written.commit.gas_used:,} gas); the chain holds "
       "a Poseidon hash, the value stays in the encrypted record")
    asked = (f"type = Observation and code = http://loinc.org|4548-4 and unit = % and value < 6.5 "
             f"and date >= {today.replace(month=1, day=1).isoformat()}")
    console.print(f"  an employer (outside the consortium) asks: [bold]{asked}[/]")
    proof = patient.prove(written.record.record_id, asked, verifier=employer.client.address)
    ok(f"patient proves it for the employer only: a {len(proof.to_json()):,}-byte proof, no value in it")
    received = ClaimProof.from_json(proof.to_json())
    checked = employer.check(received, expected=Predicate.parse(asked))
    ok(f"employer checks it with a view call (no gas): record of patient {checked.patient}, active, "
       "written by a lab with the patient's grant")
    tx = employer.record_check(received, expected=Predicate.parse(asked))
    ok(f"employer records the check on chain ({tx.gas_used:,} gas): ClaimProven joins the patient's audit trail")
    try:
        patient.prove(written.record.record_id, asked.replace("6.5", "5.5"), verifier=employer.client.address)
        raise EHRError("the prover made a proof of something false")
    except ClaimUnsatisfied:
        ok("asked for `value < 5.5`, the patient's client refuses: it never proves what the record does not say")
    widened = dataclasses.replace(received, predicate=dataclasses.replace(received.predicate,
                                                                          value_hi=received.predicate.value_hi + 2000))
    try:
        employer.check(widened)
        raise EHRError("the chain accepted a proof with an altered bound")
    except ClaimProofRejected:
        ok("the same proof with its bound moved to 8.5 is rejected by the chain")
