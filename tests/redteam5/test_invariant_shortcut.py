"""Attacks on the FHIR invariants skipped when their elements are absent (dom-2/4/5 without
`contained`, obs-6 without `dataAbsentReason`, obs-7 without `component`, and since 46a3ef1 qty-3
without `code` and ref-1 without `reference`;
ehr_client/records/fhir_r4/native.py `HOLDS_WITHOUT`): each resource breaks one of them, with the
breaking element spelt through a JSON escape, carried only as a primitive's `_` extension, or nested
where the walk must find it (a Parameters resource, a Bundle in a Bundle, a contained resource)."""

from __future__ import annotations

import copy
import json
from typing import Any

import fhirpathpy
import pytest
from fhirpathpy.models import models as fhirpath_models
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ehr_client.errors import InvalidRecord
from ehr_client.records.fhir import fhir_problems, validate_bundle_entries, validate_fhir
from ehr_client.records.fhir_r4.native import HOLDS_WITHOUT

_OBSERVATION = '{"resourceType":"Observation","status":"final","code":{"text":"x"}'
_VERSIONED_ORG = {"resourceType": "Organization", "id": "o1", "name": "x", "meta": {"versionId": "1"}}
_BREAKING = {
    "dom-4 through an escaped member name": (
        '{"resourceType":"Patient","contain\\u0065d":[' + json.dumps(_VERSIONED_ORG)
        + '],"managingOrganization":{"reference":"#o1"}}'),
    "obs-6 through an escaped member name":
        _OBSERVATION + ',"valueString":"a","data\\u0041bsentReason":{"text":"unknown"}}',
    "obs-6 with the value only as its _ extension":
        _OBSERVATION + ',"_valueString":{"extension":[{"url":"http://example.org/x","valueString":"y"}]},'
        '"dataAbsentReason":{"text":"unknown"}}',
    "dom-4 in a Parameters resource": json.dumps({"resourceType": "Parameters", "parameter": [{
        "name": "p", "resource": {
            "resourceType": "Patient", "managingOrganization": {"reference": "#o1"},
            "contained": [{**_VERSIONED_ORG, "meta": {"lastUpdated": "2020-01-01T00:00:00Z"}}]}}]}),
    "dom-2 contained in contained": json.dumps({"resourceType": "Patient", "contained": [{
        "resourceType": "Organization", "id": "o1", "name": "x", "partOf": {"reference": "#o2"},
        "contained": [{"resourceType": "Organization", "id": "o2", "name": "y"}]}],
        "managingOrganization": {"reference": "#o1"}}),
    "obs-6 in a contained Observation": json.dumps({"resourceType": "DiagnosticReport", "status": "final",
        "code": {"text": "r"}, "result": [{"reference": "#o"}], "contained": [json.loads(
            _OBSERVATION + ',"id":"o","valueString":"a","dataAbsentReason":{"text":"unknown"}}')]}),
    "qty-3 with the code only as its _ extension": _OBSERVATION + ',"valueRange":{"low":{"value":1,'
        '"_code":{"extension":[{"url":"http://example.org/x","valueString":"y"}]}}}}',
    "ref-1 dangling in a contained resource": json.dumps({"resourceType": "DiagnosticReport", "status": "final",
        "code": {"text": "r"}, "result": [{"reference": "#o"}], "contained": [json.loads(
            _OBSERVATION + ',"id":"o","valueString":"a","subject":{"reference":"#nowhere"}}')]}),
    "obs-7 in a Bundle in a Bundle": json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [{
        "fullUrl": "urn:uuid:0b9f0d2c-8f0a-4a8e-9d5e-0f0e0e0e0e02", "resource": {
            "resourceType": "Bundle", "type": "collection", "entry": [{
                "fullUrl": "urn:uuid:0b9f0d2c-8f0a-4a8e-9d5e-0f0e0e0e0e03", "resource": {
                    "resourceType": "Observation", "status": "final", "valueString": "a",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "1-8"}]},
                    "component": [{"code": {"coding": [{"system": "http://loinc.org", "code": "1-8"}]},
                                   "valueString": "b"}]}}]}}]}),
}


@pytest.mark.parametrize("text", _BREAKING.values(), ids=_BREAKING.keys())
def test_a_resource_breaking_a_shortcut_invariant_is_refused_on_every_path(text: str) -> None:
    assert fhir_problems(text)
    with pytest.raises(InvalidRecord):
        validate_fhir(text)
    with pytest.raises(InvalidRecord):
        validate_fhir(json.loads(text))
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:0b9f0d2c-8f0a-4a8e-9d5e-0f0e0e0e0e01", "resource": json.loads(text)}]}
    (entry,) = validate_bundle_entries(bundle)
    assert entry.record is None and entry.problems


_ON_OBSERVATIONS = ("dom-2", "dom-4", "dom-5", "obs-6", "obs-7")  # the shortcut's invariants of an Observation's root
_CODES = ({"system": "http://loinc.org", "code": "8480-6"}, {"system": "http://loinc.org", "code": "8462-4"})
_SECURITY = {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}


@st.composite
def _observations(draw: st.DrawFn) -> dict[str, Any]:
    """An Observation with any mix of the elements the shortcut keys on and those they constrain."""
    resource: dict[str, Any] = {"resourceType": "Observation", "status": "final",
                                "code": {"coding": [draw(st.sampled_from(_CODES))]}}
    value = draw(st.sampled_from(["none", "string", "quantity", "extension only"]))
    if value == "string":
        resource["valueString"] = "a"
    elif value == "quantity":
        resource["valueQuantity"] = {"value": 1, "unit": "mm[Hg]"}
    elif value == "extension only":
        resource["_valueString"] = {"extension": [{"url": "http://example.org/x", "valueString": "y"}]}
    if draw(st.booleans()):
        resource["dataAbsentReason"] = {"text": "unknown"}
    components = draw(st.lists(st.tuples(st.sampled_from(_CODES), st.booleans()), max_size=2))
    if components:
        resource["component"] = [{"code": {"coding": [code]}, **({"valueString": "b"} if valued else {})}
                                 for code, valued in components]
    contained = []
    for index in range(draw(st.integers(0, 2))):
        meta = draw(st.fixed_dictionaries({}, optional={"versionId": st.just("1"),
                                                        "lastUpdated": st.just("2020-01-01T00:00:00Z"),
                                                        "security": st.just([_SECURITY])}))
        organization: dict[str, Any] = {"resourceType": "Organization", "id": f"o{index}", "name": "x"}
        if meta:
            organization["meta"] = meta
        if draw(st.booleans()):
            organization["contained"] = [{"resourceType": "Organization", "id": f"n{index}", "name": "y"}]
            organization["partOf"] = {"reference": f"#n{index}"}
        contained.append(organization)
    if contained:
        resource["contained"] = contained
        resource["performer"] = [{"reference": f"#{c['id']}"} for c in contained]
    return resource


def _engine_says_broken(resource: dict[str, Any]) -> set[str]:
    """The shortcut's invariants that fhirpathpy itself finds false on the resource, run in full."""
    broken = set()
    for key in _ON_OBSERVATIONS:
        expression = HOLDS_WITHOUT[key][0]
        data = copy.deepcopy(resource)
        result = fhirpathpy.evaluate(data, expression, {"resource": data, "rootResource": data},
                                     model=fhirpath_models["r4"])
        if result == [False]:
            broken.add(key)
    return broken


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_observations())
def test_the_shortcut_refuses_exactly_what_the_engine_run_in_full_refuses(resource: dict[str, Any]) -> None:
    reported = {problem.rule.split(":")[0] for problem in fhir_problems(resource) if problem.path == "Observation"}
    assert reported & set(_ON_OBSERVATIONS) == _engine_says_broken(resource)
