"""Attacks on the FHIR invariants skipped when their elements are absent (dom-2/4/5 without
`contained`, obs-6 without `dataAbsentReason`, obs-7 without `component`;
ehr_client/records/fhir_r4/native.py `HOLDS_WITHOUT`): each resource breaks one of them, with the
breaking element spelt through a JSON escape, carried only as a primitive's `_` extension, or nested
where the walk must find it (a Parameters resource, a Bundle in a Bundle, a contained resource)."""

from __future__ import annotations

import json

import pytest

from ehr_client.errors import InvalidRecord
from ehr_client.records.fhir import fhir_problems, validate_bundle_entries, validate_fhir

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
    "dom-4 in a Parameters resource": json.dumps({"resourceType": "Parameters", "parameter": [{"name": "p", "resource": {
        "resourceType": "Patient", "contained": [{**_VERSIONED_ORG, "meta": {"lastUpdated": "2020-01-01T00:00:00Z"}}],
        "managingOrganization": {"reference": "#o1"}}}]}),
    "dom-2 contained in contained": json.dumps({"resourceType": "Patient", "contained": [{
        "resourceType": "Organization", "id": "o1", "name": "x", "partOf": {"reference": "#o2"},
        "contained": [{"resourceType": "Organization", "id": "o2", "name": "y"}]}],
        "managingOrganization": {"reference": "#o1"}}),
    "obs-6 in a contained Observation": json.dumps({"resourceType": "DiagnosticReport", "status": "final",
        "code": {"text": "r"}, "result": [{"reference": "#o"}], "contained": [json.loads(
            _OBSERVATION + ',"id":"o","valueString":"a","dataAbsentReason":{"text":"unknown"}}')]}),
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
