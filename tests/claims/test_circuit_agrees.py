"""The circuit accepts a witness exactly when the prover's own check says the claim satisfies the
predicate: so refusing early never hides a provable claim, and no false claim has a witness.
The witness is computed by circom's generated WebAssembly (`snarkjs wtns calculate`), which fails
on any unsatisfied constraint."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ehr_client.claims import Claim, ClaimKind, ClaimSetup, Predicate
from ehr_client.claims.model import DATE_MAX, VALUE_MAX, code_element, unit_element
from ehr_client.claims.prover import circuit_inputs, public_signals
from ehr_client.claims.toolchain import node_modules

RECORD = bytes(range(32))
CODES = ["http://loinc.org|4548-4", "http://loinc.org|2345-7", "http://hl7.org/fhir/sid/cvx|03"]
UNITS = ["%", "mmol/L"]


def _witness_ok(setup: ClaimSetup, inputs: dict[str, object], folder: Path) -> bool:
    (folder / "input.json").write_text(json.dumps(inputs))
    done = subprocess.run(["node", str(node_modules() / "snarkjs" / "build" / "cli.cjs"), "wtns", "calculate",
                           str(setup.build.wasm), "input.json", "w.wtns"], cwd=folder, capture_output=True,
                          timeout=120, check=False)
    return done.returncode == 0 and (folder / "w.wtns").exists()


@settings(max_examples=24, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(list(ClaimKind)), claim_kind=st.sampled_from(list(ClaimKind)),
       code=st.sampled_from(CODES), codes=st.lists(st.sampled_from(CODES), max_size=3, unique=True),
       claim_unit=st.sampled_from(UNITS), unit=st.none() | st.sampled_from(UNITS),
       value=st.integers(0, VALUE_MAX), bounds=st.tuples(st.integers(0, VALUE_MAX), st.integers(0, VALUE_MAX)),
       date=st.integers(19000101, 20991231), dates=st.tuples(st.integers(0, DATE_MAX), st.integers(0, DATE_MAX)),
       salt=st.integers(1, 2**250))
def test_witness_exists_exactly_when_the_predicate_holds(claim_setup: ClaimSetup, tmp_path: Path, kind: ClaimKind,
                                                         claim_kind: ClaimKind, code: str, codes: list[str],
                                                         claim_unit: str, unit: str | None, value: int,
                                                         bounds: tuple[int, int], date: int,
                                                         dates: tuple[int, int], salt: int) -> None:
    claim = Claim(claim_kind, code_element(code), unit_element(claim_unit), value, date)
    # Bounds near the claim half of the time, so both outcomes are searched.
    value_lo, value_hi = sorted(bounds) if bounds[0] % 2 else (max(0, value - bounds[0] % 5), value + bounds[1] % 3)
    date_lo, date_hi = sorted(dates) if dates[0] % 2 else (date - dates[0] % 3, date + dates[1] % 2)
    predicate = Predicate(kind, tuple(codes), unit, value_lo, min(value_hi, VALUE_MAX), max(date_lo, 0),
                          min(date_hi, DATE_MAX))
    commitment = claim.commitment(RECORD, salt)
    inputs = circuit_inputs(public_signals(commitment, RECORD, 12345, predicate), claim, salt)
    holds = predicate.holds_for(claim)
    event(f"holds={holds}")
    assert _witness_ok(claim_setup, inputs, tmp_path) is holds


def test_a_wrong_salt_has_no_witness(claim_setup: ClaimSetup, tmp_path: Path) -> None:
    claim = Claim(ClaimKind.PATIENT, 0, 0, 2**47, 19900101)
    predicate = Predicate(ClaimKind.PATIENT, date_hi=20000101)
    inputs = circuit_inputs(public_signals(claim.commitment(RECORD, 7), RECORD, 1, predicate), claim, 8)
    assert not _witness_ok(claim_setup, inputs, tmp_path)
    inputs = circuit_inputs(public_signals(claim.commitment(RECORD, 7), RECORD, 1, predicate), claim, 7)
    assert _witness_ok(claim_setup, inputs, tmp_path)
