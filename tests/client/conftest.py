"""Fixtures for the Python client: a suite deployed with web3 on Ape's Anvil, real stores, identities."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from ehr_client.chain.client import ChainClient, deploy_suite
from ehr_client.client import EHRClient, Identity
from ehr_client.crypto import generate_x25519_keypair
from ehr_client.storage import LocalStore
from tests.constants import ACTION, DAY, ROLE


@pytest.fixture(scope="session")
def rpc_url(chain: Any) -> str:
    return str(chain.provider.uri)


def _identity(account: Any) -> Identity:
    return Identity.from_private_keys(account.private_key, {1: generate_x25519_keypair().private_key})


@pytest.fixture(scope="session")
def ids(accounts: Any) -> dict[str, Identity]:
    """Funded Anvil accounts with fresh X25519 keys, by role."""
    names = ["gov_a", "gov_b", "gov_c", "hospital", "doctor", "lab", "insurer", "custodian", "patient", "stranger",
             "other_patient"]
    return {name: _identity(accounts[i]) for i, name in enumerate(names)}


@pytest.fixture(scope="session")
def suite(rpc_url: str, ids: dict[str, Identity]) -> ChainClient:
    """The four contracts deployed through the client (not Ape), with members admitted."""
    governors = [ids[g].address for g in ("gov_a", "gov_b", "gov_c")]
    deployment = deploy_suite(rpc_url, ids["gov_a"].account, network="test", governors=governors, threshold=2)
    chain = ChainClient(rpc_url, deployment)
    consortium = chain.consortium.functions
    for name, role in [("hospital", "provider"), ("doctor", "provider"), ("lab", "lab"), ("insurer", "insurer"),
                       ("custodian", "custodian")]:
        result = chain.transact(ids["gov_a"].account, consortium.propose(ACTION["admit"], ids[name].address,
                                                                           ROLE[role], DAY), action="propose")
        proposal_id = chain.events_in(result, "Consortium", "ProposalCreated")[0]["proposalId"]
        chain.transact(ids["gov_b"].account, consortium.approve(proposal_id), action="approve")
        chain.transact(ids["gov_b"].account, consortium.execute(proposal_id), action="execute")
    return chain


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


@pytest.fixture
def client_for(suite: ChainClient, ids: dict[str, Identity], store: LocalStore, tmp_path: Path) -> Callable[..., EHRClient]:
    """An EHRClient acting as the named identity, sharing one store (the embedded default)."""

    def make(name: str, *, blob_store: Any = None) -> EHRClient:
        return EHRClient(suite, blob_store or store, ids[name], state_dir=tmp_path / "state" / name)

    return make


@pytest.fixture
def people(client_for: Callable[..., EHRClient]) -> dict[str, EHRClient]:
    """Patient registered with a published key; lab, hospital and doctor keys published."""
    clients = {name: client_for(name) for name in ("patient", "lab", "hospital", "doctor", "stranger", "insurer")}
    clients["patient"].register_patient()
    for client in clients.values():
        client.publish_key()
    return clients


@pytest.fixture
def observation() -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]},
        "valueQuantity": {"value": 5.40, "unit": "mmol/L"},
    }


@pytest.fixture
def condition() -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                       "code": "active"}]},
        "code": {"text": "Type 2 diabetes"},
        "subject": {"reference": "Patient/example"},
    }


def lab_result(text: str, value: float) -> dict[str, Any]:
    """A minimal lab Observation (scope: lab) whose code text makes it distinct; ids derive from content."""
    return {"resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "laboratory"}]}],
            "code": {"text": text}, "valueQuantity": {"value": value, "unit": "mmol/L"}}


def mine(chain: ChainClient, blocks: int) -> None:
    """`blocks` empty blocks. Thousands take a loaded Anvil longer than the client's 10 s request
    timeout (5,010 timed out under load 6), so this asks with its own."""
    answer = requests.post(chain.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "anvil_mine",
                                                "params": [hex(blocks), "0x0"]}, timeout=600).json()
    assert "error" not in answer, answer
