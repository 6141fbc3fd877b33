"""Fixtures for zero-knowledge claims: one ceremony (cached on disk per circuit version), the claim
registry deployed on the client tests' suite, and people who write, prove and verify.

The ceremony is real (circom2 and snarkjs from node_modules, local powers of tau, two members);
the first session after a circuit change runs it (a minute or two), later sessions, the demo and
the benchmark reuse it (`ehr_client.dev.claims`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ehr_client.chain.client import ChainClient
from ehr_client.claims import Claims, ClaimSetup, deploy_claim_registry
from ehr_client.claims.registry import ClaimRegistry
from ehr_client.client import EHRClient, Identity
from ehr_client.dev.claims import LOCAL_MEMBERS, local_claim_setup
from ehr_client.records import Scope
from ehr_client.storage import LocalStore
from tests.client.conftest import ids, rpc_url, suite  # noqa: F401  (fixtures shared with the client tests)
from tests.constants import DAY

MEMBERS = LOCAL_MEMBERS
LAB = int(Scope.LAB)
WRITES = int(Scope.LAB | Scope.DEMOGRAPHICS | Scope.IMMUNIZATIONS | Scope.CONDITIONS)
HBA1C = "http://loinc.org|4548-4"


@pytest.fixture(scope="session")
def claim_setup() -> ClaimSetup:
    return local_claim_setup()


@pytest.fixture(scope="session")
def claim_registry_address(suite: ChainClient, ids: dict[str, Identity], claim_setup: ClaimSetup) -> str:  # noqa: F811
    return deploy_claim_registry(suite, ids["gov_a"].account, claim_setup)


@pytest.fixture(scope="module")
def claims_for(suite: ChainClient, ids: dict[str, Identity], claim_setup: ClaimSetup,  # noqa: F811
               claim_registry_address: str, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Claims]:
    root = tmp_path_factory.mktemp("claims")
    store = LocalStore(root / "store")
    made: dict[str, Claims] = {}

    def make(name: str) -> Claims:
        if name not in made:
            client = EHRClient(suite, store, ids[name], state_dir=root / "state" / name)
            made[name] = Claims(client, ClaimRegistry(suite, claim_registry_address), claim_setup)
        return made[name]

    return make


@pytest.fixture(scope="module")
def world(claims_for: Callable[[str], Claims]) -> dict[str, Claims]:
    """Patient registered, keys published, lab and hospital allowed to write lab results, demographics,
    immunizations and conditions; the doctor is a provider without a grant."""
    people = {name: claims_for(name) for name in ("patient", "lab", "hospital", "insurer", "stranger", "doctor")}
    patient = people["patient"].client
    patient.register_patient()
    for person in people.values():
        person.client.publish_key()
    for author in ("lab", "hospital"):
        patient.grant(people[author].client.address, WRITES, access="amend", expires_at=patient.chain.now() + 30 * DAY,
                      share_keys=False)
    return people


def hba1c(value: float, day: str = "2026-03-02") -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4", "display": "Hemoglobin A1c"}]},
            "effectiveDateTime": f"{day}T08:30:00Z",
            "valueQuantity": {"value": value, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}}


@pytest.fixture
def events(suite: ChainClient, claim_registry_address: str) -> Callable[[str], list[Any]]:  # noqa: F811
    """Decoded events of the claim registry by name, from the whole chain."""
    registry = ClaimRegistry(suite, claim_registry_address).contract

    def fetch(name: str) -> list[Any]:
        return list(getattr(registry.events, name).get_logs(from_block=0))

    return fetch
