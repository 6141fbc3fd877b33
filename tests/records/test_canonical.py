"""canonicalize / parse_json: stable bytes for the same JSON value (RFC 8785 with exact decimals)."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ehr_client.errors import InvalidRecord
from ehr_client.records import canonicalize, parse_json, validate_fhir
from ehr_client.records.canonical import MAX_DEPTH

SETTINGS = settings(derandomize=True, max_examples=150, deadline=None)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=25,
)


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {key: _shuffled(item, rng) for key, item in items}
    if isinstance(value, list):
        return [_shuffled(item, rng) for item in value]
    return value


@SETTINGS
@given(json_values)
def test_canonical_is_a_fixed_point_of_reparsing(value: Any) -> None:
    once = canonicalize(value)

    assert canonicalize(parse_json(once)) == once


@SETTINGS
@given(json_values, st.integers(min_value=0, max_value=2**32))
def test_canonical_ignores_member_order(value: Any, seed: int) -> None:
    assert canonicalize(_shuffled(value, random.Random(seed))) == canonicalize(value)


@SETTINGS
@given(json_values)
def test_canonical_bytes_are_valid_utf8_json_without_whitespace(value: Any) -> None:
    text = canonicalize(value).decode("utf-8")

    json.loads(text)
    assert "\n" not in text.replace("\\n", "")


@SETTINGS
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(alphabet=st.characters(max_codepoint=0xD7FF)),
        lambda children: st.lists(children, max_size=4)
        | st.dictionaries(st.text(alphabet=st.characters(max_codepoint=0xD7FF), max_size=8), children, max_size=4),
        max_leaves=25,
    )
)
def test_without_decimals_canonical_matches_sorted_compact_json(value: Any) -> None:
    # For BMP text below the surrogates, UTF-16 order equals code point order, so RFC 8785
    # agrees with Python's sorted, compact, non-ASCII-escaping json.dumps.
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    assert canonicalize(value) == expected


@SETTINGS
@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_decimal_value_and_precision_survive(number: Decimal) -> None:
    parsed = parse_json(canonicalize({"value": number}))

    assert isinstance(parsed, dict)
    result = parsed["value"]
    assert result == number
    if isinstance(result, Decimal):
        assert result.as_tuple().exponent == number.as_tuple().exponent


def test_trailing_zeros_are_significant() -> None:
    assert canonicalize(parse_json('{"v":1.0}')) != canonicalize(parse_json('{"v":1.00}'))
    assert canonicalize(parse_json('{"v":1.00}')) == b'{"v":1.00}'


def test_exponent_spellings_of_one_decimal_agree() -> None:
    assert canonicalize(parse_json("[1.0e2]")) == canonicalize(parse_json("[1.0E+2]")) == b"[1.0E+2]"


def test_negative_zero_is_written_as_zero() -> None:
    assert canonicalize(parse_json("[-0.0, -0]")) == b"[0.0,0]"


def test_python_floats_use_shortest_repr() -> None:
    assert canonicalize([0.1, 1.0, 1e16]) == b"[0.1,1.0,1E+16]"


def test_members_sort_by_utf16_code_units_as_rfc8785() -> None:
    # The sorting example of RFC 8785 section 3.2.3.
    value = {"\u20ac": 1, "\r": 2, "\ufb33": 3, "1": 4, "\U0001f600": 5, "\u0080": 6, "\u00f6": 7}

    keys = list(json.loads(canonicalize(value)))

    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_strings_escape_only_what_rfc8785_requires() -> None:
    assert canonicalize(["\u20ac\n\x1f\"\\/"]) == '["\u20ac\\n\\u001f\\"\\\\/"]'.encode()


def test_fhir_resource_canonical_is_independent_of_member_order() -> None:
    a = '{"resourceType":"Observation","status":"final","code":{"text":"x","coding":[{"code":"1","system":"s"}]}}'
    b = '{"code":{"coding":[{"system":"s","code":"1"}],"text":"x"},"status":"final","resourceType":"Observation"}'

    assert validate_fhir(a).canonical == validate_fhir(b).canonical


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), Decimal("NaN"), Decimal("-Infinity"), {1: "a"}, b"bytes", {"a": object()}, "\ud800"],
)
def test_values_json_cannot_hold_are_rejected(value: Any) -> None:
    with pytest.raises(InvalidRecord):
        canonicalize(value)


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a":1,"a":1}', "[1,]", ""])
def test_non_standard_json_is_rejected(text: str) -> None:
    with pytest.raises(InvalidRecord):
        parse_json(text)


def test_nesting_limit_applies_to_parse_and_canonicalize() -> None:
    deep_text = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    deep: list[Any] = []
    for _ in range(MAX_DEPTH):
        deep = [deep]

    with pytest.raises(InvalidRecord):
        parse_json(deep_text)
    with pytest.raises(InvalidRecord):
        canonicalize(deep)
    assert canonicalize(parse_json("[" * MAX_DEPTH + "]" * MAX_DEPTH))


def test_utf8_bom_is_ignored() -> None:
    assert parse_json(b'\xef\xbb\xbf{"a":1}') == {"a": 1}
