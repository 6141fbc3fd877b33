"""Zero-knowledge claims: typed facts of a record committed on write, proven without revealing them.

- `extract_claim`: the claim a FHIR resource carries (Observation, Immunization, Patient, Condition);
- `Predicate`: bounds over a claim (value range, code set, date bounds, age at a date);
- `run_ceremony` / `Ceremony`: the multi-party Groth16 setup; `ClaimSetup` its finished files;
- `Claims`: commit (author), prove (reader), check and record a check (verifier);
- `ClaimProof`: the JSON document a verifier receives; `deploy_claim_registry`, and
  `check_claim_registry` (does a deployed registry verify with this setup?).
"""

from ehr_client.claims.ceremony import Ceremony, run_ceremony
from ehr_client.claims.extract import extract_claim
from ehr_client.claims.model import Claim, ClaimKind
from ehr_client.claims.predicate import Predicate
from ehr_client.claims.proof_file import ClaimProof
from ehr_client.claims.registry import (
    CheckedClaim,
    ClaimRegistry,
    RegistryCheck,
    check_claim_registry,
    deploy_claim_registry,
    deploy_claim_registry_tx,
)
from ehr_client.claims.service import NO_CHALLENGE, ClaimedWrite, Claims, predicate_id
from ehr_client.claims.setup import ClaimSetup

__all__ = [
    "NO_CHALLENGE", "Ceremony", "CheckedClaim", "Claim", "ClaimKind", "ClaimProof", "ClaimRegistry", "ClaimSetup",
    "ClaimedWrite", "Claims", "RegistryCheck", "check_claim_registry", "deploy_claim_registry_tx", "extract_claim", "deploy_claim_registry", "predicate_id", "run_ceremony",
]
