"""`ehr claim check-registry` compares only the runtime code of a claim registry with what deploying it
would leave. A contract's creation code can write storage before it returns its runtime code, so an
attacker deploys byte-for-byte the genuine ClaimRegistry code with commitments of its own choosing
already in storage. The check passes, and the registry then accepts proofs of false claims about a
real patient's real lab record, emitting ClaimProven into the patient's audit trail."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

from eth_utils import to_checksum_address
import pytest

from ehr_client.chain.abi import load_artifact
from ehr_client.chain.client import ChainClient
from ehr_client.claims import Claims, ClaimProof, ClaimSetup
from ehr_client.claims.model import Claim, ClaimKind, code_element, encode_date, encode_value, unit_element
from ehr_client.claims.predicate import Predicate
from ehr_client.claims.prover import prove
from ehr_client.claims.registry import (
    ClaimRegistry,
    _created_code,
    _deployed_code,
    check_claim_registry,
    deploy_claim_registry_tx,
)
from ehr_client.client import Identity
from ehr_client.errors import IntegrityError
from tests.claims.conftest import hba1c
from tests.redteam_claims.attacker import create, create_tx, init_code, mapping_slot

COMMITMENTS_SLOT = 0  # ClaimRegistry: mapping(bytes32 => uint256) _commitments
ASKED = "type = Observation and code = http://loinc.org|4548-4 and unit = % and value < 6.5"


def test_check_registry_accepts_a_registry_born_with_forged_commitments(
        suite: ChainClient, ids: dict[str, Identity], claim_setup: ClaimSetup, world: dict[str, Claims]) -> None:
    lab, patient, insurer = world["lab"], world["patient"], world["insurer"]
    attacker = ids["stranger"].account  # not even a consortium member
    # The truth on chain: the accredited lab wrote the patient's HbA1c of 8.41 %.
    truth = lab.client.add_record(patient.client.address, hba1c(8.41, "2026-06-03"))
    record_id = truth.record_id

    # The attacker deploys the audited setup's verifier honestly, then a "ClaimRegistry" whose
    # runtime code is exactly the genuine one over this deployment, but whose creation code first
    # stores a commitment to a claim the attacker made up (HbA1c 5.20 %) for the lab's real record.
    verifier = create(suite, attacker, bytes.fromhex(claim_setup.verifier_artifact()["bytecode"][2:]))
    runtime = _created_code(suite, load_artifact("ClaimRegistry"), (suite.records.address, verifier))
    fake = Claim(ClaimKind.OBSERVATION, code_element("http://loinc.org|4548-4"), unit_element("%"),
                 encode_value(Decimal("5.20")), encode_date(datetime.date(2026, 6, 3)))
    salt = 424242
    commitment = fake.commitment(record_id, salt)
    forged, forged_tx = create_tx(suite, attacker,
                                  init_code(runtime, {mapping_slot(record_id, COMMITMENTS_SLOT): commitment}))
    assert _deployed_code(suite, forged) == runtime  # byte for byte the audited code

    # Harm: with only the public zkey, the attacker proves "HbA1c < 6.5" about the patient's record;
    # the forged registry accepts it for the insurer and names the real patient.
    registry = ClaimRegistry(suite, forged)
    assert registry.commitment_of(record_id) == commitment
    predicate = Predicate.parse(ASKED, kind=ClaimKind.OBSERVATION)
    binding = registry.binding_of(insurer.client.address, bytes(32))
    groth16 = prove(claim_setup, fake, salt, record_id, commitment, binding, predicate)
    proof = ClaimProof(suite.chain_id, registry.address, record_id, to_checksum_address(insurer.client.address),
                       bytes(32), predicate, groth16)
    fooled = Claims(insurer.client, registry)
    assert fooled.check(proof, patient=patient.client.address).patient == patient.client.address
    fooled.record_check(proof)  # ClaimProven(record, insurer, patient) in the forged registry's log

    # The check a verifier runs before trusting ClaimProven must refuse this registry.
    # The attacker's own creation transaction does not carry the project's creation code.
    with pytest.raises(IntegrityError, match="was not created as this project's ClaimRegistry"):
        check_claim_registry(suite, forged, claim_setup, creation_tx=forged_tx)
    # Nor is the genuine registry's creation any use to it: that transaction created another address.
    with pytest.raises(IntegrityError, match="did not create"):
        check_claim_registry(suite, forged, claim_setup, creation_tx=_genuine_creation(suite, claim_setup, attacker))
    # And with no record of the creation, the node's history is searched (or the check refuses).
    with pytest.raises(IntegrityError):
        check_claim_registry(suite, forged, claim_setup)


def _genuine_creation(suite: ChainClient, claim_setup: ClaimSetup, account: Any) -> str:
    return deploy_claim_registry_tx(suite, account, claim_setup)[1]
