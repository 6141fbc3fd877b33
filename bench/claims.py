"""Zero-knowledge claims: constraints, proving time, proof size, verification gas, and what
committing a claim adds to a write (`python -m bench.claims`; writes bench/results/claims.json).

Uses the local throwaway setup (`ehr_client.dev.claims`), running its two-member ceremony the first
time and timing it then. Write cost is measured against a write without claims in the same
run: the same lab, the same kind of record, alternating, median of each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from bench._world import DAY, World
from ehr_client.batch import BatchItem, BatchWriter
from ehr_client.claims import Claims, ClaimSetup, deploy_claim_registry
from ehr_client.claims.registry import ClaimRegistry
from ehr_client.dev.claims import local_claim_setup, local_claim_setup_ready
from ehr_client.records import Scope

OUT = Path(__file__).resolve().parent / "results" / "claims.json"
ASKED = "type = Observation and code = http://loinc.org|4548-4 and unit = % and value < 6.5"


def hba1c(value: float) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
            "effectiveDateTime": "2026-03-02",
            "valueQuantity": {"value": value, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}}


def setup() -> tuple[ClaimSetup, float | None]:
    if local_claim_setup_ready():
        return local_claim_setup(), None
    started = time.perf_counter()
    return local_claim_setup(), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writes", type=int, default=10, help="writes with and without claims (each)")
    parser.add_argument("--proofs", type=int, default=5)
    args = parser.parse_args()
    claim_setup, ceremony_s = setup()
    with World() as world:
        registry = ClaimRegistry(world.chain, deploy_claim_registry(world.chain, world.ids["gov_a"].account,
                                                                    claim_setup))
        lab, patient, insurer = (Claims(world.client(n), registry, claim_setup) for n in ("lab", "patient", "doctor"))
        patient.client.register_patient()
        for person in (lab, patient, insurer):
            person.client.publish_key()
        patient.client.grant(lab.client.address, int(Scope.LAB), access="amend",
                             expires_at=patient.client.chain.now() + DAY, share_keys=False)
        plain_ms, claimed_ms, commit_gas, record_ids = [], [], [], []
        for i in range(args.writes):
            started = time.perf_counter()
            lab.client.add_record(patient.client.address, hba1c(4.0 + i / 100))
            plain_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            written = lab.add_record(patient.client.address, hba1c(5.0 + i / 100))
            claimed_ms.append((time.perf_counter() - started) * 1000)
            assert written.commit is not None
            commit_gas.append(written.commit.gas_used)
            record_ids.append(written.record.record_id)
        batched = BatchWriter(lab.client).write(BatchItem(patient.client.address, hba1c(6.0 + i / 100))
                                                for i in range(args.writes))
        started = time.perf_counter()
        batched_commits = lab.commit_batched(batched.record_ids)
        batched_commit_ms = (time.perf_counter() - started) * 1000 / len(batched_commits)
        batched_gas = [tx.gas_used for tx in batched_commits]
        prove_s, proofs = [], []
        for record_id in record_ids[: args.proofs]:
            started = time.perf_counter()
            proofs.append(patient.prove(record_id, ASKED, verifier=insurer.client.address))
            prove_s.append(time.perf_counter() - started)
        view_ms = []
        for proof in proofs:
            started = time.perf_counter()
            insurer.check(proof)
            view_ms.append((time.perf_counter() - started) * 1000)
        verify_gas = [insurer.record_check(proof).gas_used for proof in proofs]
    result = {
        "circuit": {"constraints": claim_setup.build.constraints(), "public_inputs": 19, "tau_power": 11,
                    "key": claim_setup.build.key},
        "ceremony_two_members_s": round(ceremony_s, 1) if ceremony_s is not None else "cached",
        "prove_s_median": round(statistics.median(prove_s), 2),
        "prove_note": "read_record (access request mined, decrypt) + witness + Groth16 proof, snarkjs via node",
        "proof_file_bytes": len(proofs[0].to_json()),
        "verify_view_ms_median": round(statistics.median(view_ms), 1),
        "verify_onchain_gas_median": int(statistics.median(verify_gas)),
        "commit_gas_median": int(statistics.median(commit_gas)),
        "commit_batched_gas_median": int(statistics.median(batched_gas)),
        "commit_batched_ms_mean": round(batched_commit_ms, 1),
        "commit_batched_note": "per record of a batch: open own blob, Merkle proof, one transaction",
        "write_ms_median": round(statistics.median(plain_ms), 1),
        "write_with_claim_ms_median": round(statistics.median(claimed_ms), 1),
        "write_with_claim_ratio": round(statistics.median(claimed_ms) / statistics.median(plain_ms), 2),
    }
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    for key, value in result.items():
        print(f"{key:32} {value}")


if __name__ == "__main__":
    main()
