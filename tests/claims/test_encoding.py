"""Poseidon matches circomlibjs; claims and predicates encode what the record and the verifier say."""

from __future__ import annotations

import subprocess
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ehr_client.claims import ClaimKind, Predicate, extract_claim
from ehr_client.claims.field import FIELD
from ehr_client.claims.model import VALUE_OFFSET, encode_value
from ehr_client.claims.poseidon import poseidon8
from ehr_client.claims.toolchain import PROJECT_ROOT
from tests.claims.conftest import hba1c

VECTORS = [[1, 2, 3, 4, 5, 6, 7, 8], [0] * 8, [FIELD - 1] * 8, [2**128 - 1, 2**128 - 2, 3, 0, 5, 2**47, 20260302, 9]]


def test_poseidon_matches_circomlibjs() -> None:
    script = ("import {buildPoseidonReference} from 'circomlibjs'; const p = await buildPoseidonReference();"
              f"for (const v of {[[str(x) for x in v] for v in VECTORS]}) console.log(p.F.toString(p(v.map(BigInt))));"
              "process.exit(0);")
    done = subprocess.run(["node", "--input-type=module", "-e", script], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=120, check=True)
    assert [int(x) for x in done.stdout.split()] == [poseidon8(v) for v in VECTORS]


def test_observation_claim_and_what_carries_none() -> None:
    claim = extract_claim(hba1c(5.87))
    assert claim is not None and claim.kind == ClaimKind.OBSERVATION and claim.date == 20260302
    assert claim.value == VALUE_OFFSET + 5870 and "5.87" not in repr(claim)
    assert extract_claim({**hba1c(5.87), "effectiveDateTime": "2026-03"}) is None  # partial date
    assert extract_claim({**hba1c(5.87), "valueQuantity": {"value": 5.8712, "unit": "%"}}) is None  # no rounding
    assert extract_claim({"resourceType": "Patient", "birthDate": "1990"}) is None
    assert extract_claim({"resourceType": "Medication"}) is None


@pytest.mark.parametrize(("text", "value", "holds"), [
    ("value < 6.5", "6.499", True), ("value < 6.5", "6.5", False), ("value <= 6.5", "6.5", True),
    ("value > 6.5", "6.501", True), ("value > 6.5", "6.5", False), ("value >= 6.5", "6.5", True),
    ("value = 6.5", "6.5", True), ("value = 6.5", "6.501", False), ("value in 4..6.5", "4", True),
    ("value < -1", "-1.001", True), ("value < -1", "-1", False),
])
def test_value_bounds_are_exact(text: str, value: str, holds: bool) -> None:
    predicate = Predicate.parse(f"type = Observation and unit = % and {text}")
    claim = extract_claim(hba1c(5.87))
    assert claim is not None
    import dataclasses
    assert predicate.holds_for(dataclasses.replace(claim, value=encode_value(Decimal(value)))) is holds


@pytest.mark.parametrize(("birth", "adult"), [("2008-11-30", True), ("2008-12-01", False), ("1990-01-01", True),
                                              ("2008-02-29", True), ("2008-12-31", False)])
def test_age_is_counted_in_calendar_years(birth: str, adult: bool) -> None:
    claim = extract_claim({"resourceType": "Patient", "birthDate": birth})
    assert claim is not None
    assert Predicate.parse("type = Patient and age >= 18 at 2026-11-30").holds_for(claim) is adult
    assert Predicate.parse("type = Patient and age < 18 at 2026-11-30").holds_for(claim) is not adult


def test_leap_day_birthday_comes_of_age_on_the_first_of_march() -> None:
    claim = extract_claim({"resourceType": "Patient", "birthDate": "2008-02-29"})
    assert claim is not None
    assert not Predicate.parse("type = Patient and age >= 18 at 2026-02-28").holds_for(claim)
    assert Predicate.parse("type = Patient and age >= 18 at 2026-03-01").holds_for(claim)


@pytest.mark.parametrize("text", ["", "value < 6.5", "type = Observation and value < 6.5",
                                  "type = Observation and value < x and unit = %", "type = Car",
                                  "type = Patient and age = 18 at 2026-01-01", "type = Patient and date >= 2026-13-01",
                                  "type = Observation and value > 7 and value < 6 and unit = %",
                                  "type = Observation and code in " + ", ".join(f"s|{i}" for i in range(9))])
def test_unreadable_or_empty_predicates_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Predicate.parse(text)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.sampled_from(["type = Observation and code = http://loinc.org|4548-4 and unit = % and value < 6.5",
                        "type = Patient and age >= 21 at 2030-01-01",
                        "type = Immunization and code in a|1, b|2 and date >= 2020-01-01"]))
def test_predicates_survive_their_canonical_form(text: str) -> None:
    predicate = Predicate.parse(text)
    assert Predicate.from_json(predicate.to_json()) == predicate
    assert Predicate.parse(predicate.describe()) == predicate


def test_the_documented_vector() -> None:
    """docs/claims.md states these numbers; another implementation checks itself against them."""
    from ehr_client.claims.service import claim_salt
    claim = extract_claim(hba1c(5.87))
    assert claim is not None
    assert (int(claim.kind), claim.code, claim.unit, claim.value, claim.date) == (
        1, 386300864015113683870828788780267048238500209845041490513355133225994036174,
        233198023304729678829850205723680553109129105192660448919012638145151917920, 140737488361198, 20260302)
    assert claim.commitment(bytes(range(32)), 42) == \
        2303674981011654231172318088888604295907749157659547444270502346233865740704
    assert claim_salt(bytes(32)) == 6771859172617046956280780582855666393832421809321897880176587356022209910035
