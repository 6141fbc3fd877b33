"""Property: any mutation of an official example is either refused with InvalidRecord naming a
path inside the resource, or accepted and round-tripped unchanged; the validator never crashes."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ehr_client.errors import InvalidRecord
from ehr_client.records import parse_json, validate_fhir
from tests.records.test_fhir_r4_examples import FILES

EXAMPLES: list[Any] = [parse_json(path.read_bytes()) for path in FILES[::7]]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.decimals(allow_nan=False, allow_infinity=False, places=3)
    | st.text(max_size=8) | st.sampled_from(["final", "male", "2024-01-01", "urn:uuid:x", "Patient", "#p"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["resourceType", "id", "url", "value", "valueString", "coding", "system", "code", "extension",
                         "fhir_comments", "text"]), children, max_size=3),
    max_leaves=6,
)


def _locations(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        found.append(prefix + (key,))
        found.extend(_locations(child, prefix + (key,)))
    return found


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.data())
def test_mutated_example_is_refused_with_a_path_or_round_trips(data: st.DataObject) -> None:
    resource: Any = copy.deepcopy(data.draw(st.sampled_from(EXAMPLES)))
    where = data.draw(st.sampled_from(_locations(resource)))
    holder: Any = resource
    for key in where[:-1]:
        holder = holder[key]
    holder[where[-1]] = data.draw(json_values)

    try:
        record = validate_fhir(resource)
    except InvalidRecord as exc:
        assert f"is not valid FHIR R4 (4.0.1): {resource['resourceType']}" in str(exc) \
            or "is not valid FHIR R4 (4.0.1): $" in str(exc)
        return
    assert parse_json(record.canonical) == resource
    assert validate_fhir(record.canonical).canonical == record.canonical
