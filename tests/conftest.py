"""Role and factory fixtures shared by every test that touches the chain.

Ape starts a real Anvil (ethereum:local:foundry) for the session and isolates each test in a
snapshot, so the suite deploys once and every test starts from the same state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ehr_client.chain.ids import record_id_of
from tests.constants import ACCESS_READ, ACTION, CONSENT_DOMAIN_NAME, DAY, LAB_SCOPE, PURPOSE, ROLE

pytest_plugins = ["tests.kubo_fixtures", "tests.chromium"]


@pytest.fixture(scope="session")
def governors(accounts: Any) -> list[Any]:
    return [accounts[0], accounts[1], accounts[2]]


@pytest.fixture(scope="session")
def governor(governors: list[Any]) -> Any:
    return governors[0]


@pytest.fixture(scope="session")
def hospital(accounts: Any) -> Any:
    return accounts[3]


@pytest.fixture(scope="session")
def doctor(accounts: Any) -> Any:
    return accounts[4]


@pytest.fixture(scope="session")
def lab(accounts: Any) -> Any:
    return accounts[5]


@pytest.fixture(scope="session")
def insurer(accounts: Any) -> Any:
    return accounts[6]


@pytest.fixture(scope="session")
def custodian(accounts: Any) -> Any:
    return accounts[7]


@pytest.fixture(scope="session")
def patient(accounts: Any) -> Any:
    return accounts[8]


@pytest.fixture(scope="session")
def stranger(accounts: Any) -> Any:
    return accounts[9]


@pytest.fixture(scope="session")
def other_patient(accounts: Any) -> Any:
    return accounts[10]


@pytest.fixture(scope="session")
def applicant(accounts: Any) -> Any:
    """An account that no fixture ever admits."""
    return accounts[11]


@pytest.fixture(scope="session")
def consortium(project: Any, governors: list[Any]) -> Any:
    return governors[0].deploy(project.Consortium, [g.address for g in governors], 2)


@pytest.fixture(scope="session")
def key_registry(project: Any, governor: Any) -> Any:
    return governor.deploy(project.KeyRegistry)


@pytest.fixture(scope="session")
def records(project: Any, governor: Any, consortium: Any) -> Any:
    return governor.deploy(project.RecordRegistry, consortium.address, CONSENT_DOMAIN_NAME)


@pytest.fixture(scope="session")
def consent(project: Any, records: Any) -> Any:
    return project.ConsentManager.at(records.consentManager())


@pytest.fixture(scope="session")
def admit(consortium: Any, governors: list[Any]) -> Callable[[Any, str], None]:
    """Admit `account` with `role` through a 2-of-3 proposal."""

    def _admit(account: Any, role: str) -> None:
        tx = consortium.propose(ACTION["admit"], account.address, ROLE[role], DAY, sender=governors[0])
        proposal_id = tx.return_value
        consortium.approve(proposal_id, sender=governors[1])
        consortium.execute(proposal_id, sender=governors[1])

    return _admit


@pytest.fixture(scope="session")
def network(
    consortium: Any,
    records: Any,
    consent: Any,
    key_registry: Any,
    admit: Callable[[Any, str], None],
    hospital: Any,
    doctor: Any,
    lab: Any,
    insurer: Any,
    custodian: Any,
    patient: Any,
    other_patient: Any,
) -> dict[str, Any]:
    """The deployed suite with members admitted and two patients registered."""
    admit(hospital, "provider")
    admit(doctor, "provider")
    admit(lab, "lab")
    admit(insurer, "insurer")
    admit(custodian, "custodian")
    records.registerPatient(sender=patient)
    records.registerPatient(sender=other_patient)
    return {"consortium": consortium, "records": records, "consent": consent, "keys": key_registry}


@pytest.fixture
def add_record(network: dict[str, Any], patient: Any) -> Callable[..., bytes]:
    """Anchor a record for `patient` (default: by the patient) and return its id."""
    counter = iter(range(1, 1_000_000))

    def _add(*, author: Any = None, owner: Any = None, scope: int = LAB_SCOPE) -> bytes:
        owner = owner or patient
        n = next(counter)
        salt = n.to_bytes(32, "big")
        content_hash = (n + 1_000_000).to_bytes(32, "big")
        cid = b"\x01\x55\x12\x20" + content_hash
        writer = author or owner
        network["records"].addRecord(salt, owner.address, content_hash, scope, cid, sender=writer)
        return record_id_of(writer.address, salt)

    return _add


@pytest.fixture
def grant(network: dict[str, Any], patient: Any, chain: Any) -> Callable[..., None]:
    """Grant `grantee` access from `patient` directly."""

    def _grant(grantee: Any, *, scopes: int = LAB_SCOPE, access: int = ACCESS_READ, ttl: int = DAY, owner: Any = None) -> None:
        owner = owner or patient
        expires = chain.pending_timestamp + ttl
        network["consent"].grant(grantee.address, scopes, access, expires, PURPOSE, sender=owner)

    return _grant
