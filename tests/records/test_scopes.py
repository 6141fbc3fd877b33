"""The scope table is an on-chain format: its bits, names and parsing must not drift."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ehr_client.errors import InvalidRecord
from ehr_client.records import ALL_SCOPES, Scope, describe, parse_scopes, scope_for_category, scope_for_resource
from tests.constants import CONDITION_SCOPE, LAB_SCOPE, MENTAL_SCOPE

EXPECTED_BITS = {
    "DEMOGRAPHICS": 0, "LAB": 1, "VITALS": 2, "CONDITIONS": 3, "MEDICATIONS": 4, "PROCEDURES": 5,
    "ENCOUNTERS": 6, "IMAGING": 7, "GENOMICS": 8, "MENTAL_HEALTH": 9, "DOCUMENTS": 10,
    "IMMUNIZATIONS": 11, "CARE_PLANS": 12, "SOCIAL_HISTORY": 13, "OTHER": 15,
}


def test_scope_bits_are_the_published_table() -> None:
    assert {member.name: member.value.bit_length() - 1 for member in Scope} == EXPECTED_BITS


def test_scope_bits_are_single_and_within_low_16_bits() -> None:
    for member in Scope:
        assert member.value & (member.value - 1) == 0
    assert int(ALL_SCOPES) < 1 << 16


def test_scope_bits_match_the_contract_test_constants() -> None:
    assert (Scope.LAB, Scope.CONDITIONS, Scope.MENTAL_HEALTH) == (LAB_SCOPE, CONDITION_SCOPE, MENTAL_SCOPE)


def test_parse_scopes_reads_a_comma_list() -> None:
    assert parse_scopes("lab,conditions") == Scope.LAB | Scope.CONDITIONS


def test_parse_scopes_ignores_case_spaces_and_dashes() -> None:
    assert parse_scopes(" Lab , MENTAL-health ") == Scope.LAB | Scope.MENTAL_HEALTH


def test_parse_scopes_all_means_every_category() -> None:
    assert parse_scopes("all") == ALL_SCOPES


@pytest.mark.parametrize("text", ["labs", "lab,,x", "", " , "])
def test_parse_scopes_rejects_unknown_or_empty_and_lists_names(text: str) -> None:
    with pytest.raises(InvalidRecord, match="lab, vitals"):
        parse_scopes(text)


@settings(derandomize=True, max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=int(ALL_SCOPES)).map(lambda bits: bits & int(ALL_SCOPES)).filter(bool))
def test_describe_and_parse_round_trip(bits: int) -> None:
    assert parse_scopes(",".join(describe(bits))) == bits


def test_describe_names_unknown_bits_instead_of_dropping_them() -> None:
    assert describe(int(Scope.LAB) | 1 << 14 | 1 << 40) == ["lab", "bit14", "bit40"]


def test_describe_of_zero_is_empty() -> None:
    assert describe(0) == []


@pytest.mark.parametrize(("name", "scope"), [("pdf", Scope.DOCUMENTS), ("DICOM", Scope.IMAGING), ("genomic", Scope.GENOMICS)])
def test_scope_for_category(name: str, scope: Scope) -> None:
    assert scope_for_category(name) == scope


def test_unknown_category_lists_accepted_names() -> None:
    with pytest.raises(InvalidRecord, match="dicom, document, genomic, image, pdf"):
        scope_for_category("xray")


def test_category_code_without_system_still_counts() -> None:
    resource = {"resourceType": "Observation", "category": [{"coding": [{"code": "vital-signs"}]}]}

    assert scope_for_resource(resource) == Scope.VITALS


def test_unlisted_resource_type_is_other() -> None:
    assert scope_for_resource({"resourceType": "QuestionnaireResponse"}) == Scope.OTHER


def test_security_label_from_another_system_does_not_count() -> None:
    resource = {"resourceType": "Condition", "meta": {"security": [{"system": "http://example.org/local", "code": "PSY"}]}}

    assert scope_for_resource(resource) == Scope.CONDITIONS


def test_resource_without_type_is_rejected() -> None:
    with pytest.raises(InvalidRecord, match="resourceType"):
        scope_for_resource({"status": "final"})
