"""Bad FHIR R4 input: each case is refused with InvalidRecord naming the element path and the rule."""

from __future__ import annotations

from typing import Any

import pytest

from ehr_client.errors import InvalidRecord
from ehr_client.records import validate_fhir
from ehr_client.records.fhir import fhir_problems, validate_bundle_entries
from ehr_client.records.fhir_r4.invariants import skipped
from ehr_client.records.fhir_r4.structure import Problem

VS = "http://hl7.org/fhir/ValueSet/"


def _observation(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "status": "final", "code": {"text": "Hemoglobin"}, **extra}


def _patient(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "p1", **extra}


def _refused(resource: Any, expected: str) -> None:
    with pytest.raises(InvalidRecord) as caught:
        validate_fhir(resource)
    assert expected in str(caught.value)


def test_observation_status_outside_required_value_set() -> None:
    _refused(_observation(status="banana"),
             f"Observation.status: 'banana' is not in the required value set {VS}observation-status")


def test_patient_gender_outside_required_value_set() -> None:
    _refused(_patient(gender="banana"), f"Patient.gender: 'banana' is not in the required value set {VS}administrative-gender")


def test_immunization_status_given_is_not_r4() -> None:
    immunization = {"resourceType": "Immunization", "status": "given", "vaccineCode": {"text": "MMR"},
                    "patient": {"reference": "Patient/p1"}, "occurrenceDateTime": "2024-01-02"}
    _refused(immunization, f"Immunization.status: 'given' is not in the required value set {VS}immunization-status")


def test_bundle_type_outside_required_value_set() -> None:
    _refused({"resourceType": "Bundle", "type": "banana"}, f"Bundle.type: 'banana' is not in the required value set {VS}bundle-type")


def test_coding_with_required_binding_checks_system_and_code() -> None:
    bad = {"resourceType": "Patient", "communication": [{"language": {"text": "x"}}],
           "link": [{"other": {"reference": "Patient/2"}, "type": "seealso"}],
           "meta": {"tag": [{"system": "http://example.org", "code": "x"}]}}
    assert fhir_problems(bad) == []  # language: preferred binding, tag: example binding
    message = {"resourceType": "MessageHeader", "eventCoding": {"system": "http://example.org/events", "code": "e"},
               "source": {"endpoint": "http://example.org"}, "response": {"identifier": "1", "code": "fine"}}
    assert Problem("MessageHeader.response.code", f"'fine' is not in the required value set {VS}response-code") in fhir_problems(message)


def test_fhir_comments_is_refused() -> None:
    _refused(_patient(fhir_comments=["a note"]), "Patient.fhir_comments: fhir_comments is not an element of FHIR R4")


def test_unknown_element_is_refused() -> None:
    _refused(_patient(nickname="Bob"), "Patient.nickname: is not an element of FHIR R4 Patient")


def test_wrong_type_is_refused() -> None:
    _refused(_patient(active="yes"), "Patient.active: must be true or false")
    _refused(_patient(name={"family": "Doe"}), "Patient.name: must be a JSON array")


def test_empty_string_is_refused() -> None:
    _refused(_patient(name=[{"family": ""}]), "Patient.name[0].family: empty string")


def test_empty_array_is_refused() -> None:
    _refused(_patient(name=[]), "Patient.name: empty array")


def test_null_is_refused() -> None:
    _refused(_patient(active=None), "Patient.active: null is not allowed")


def test_null_in_array_without_extension_partner_is_refused() -> None:
    _refused(_patient(name=[{"given": ["A", None]}]), "Patient.name[0].given[1]: null is not allowed here")
    assert fhir_problems(_patient(name=[{"given": ["A", None], "_given": [None, {"extension": [
        {"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}]}]}])) == []


def test_primitive_array_and_its_extension_array_must_line_up() -> None:
    absent = {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}]}
    _refused(_patient(name=[{"given": ["A", "B"], "_given": [None, absent, absent]}]),
             "Patient.name[0]._given: must have as many items as given (2)")
    _refused(_patient(name=[{"given": [None, "B"], "_given": [None, absent]}]),
             "Patient.name[0].given[0]: null is not allowed here")


def test_two_values_for_one_choice_are_refused() -> None:
    _refused(_patient(deceasedBoolean=True, deceasedDateTime="2020-01-01"),
             "Patient.deceasedDateTime: deceased[x] has a value already (deceasedBoolean)")


def test_r5_only_element_is_refused() -> None:
    # Observation.triggeredBy is new in R5
    _refused(_observation(triggeredBy=[{"observation": {"reference": "Observation/1"}, "type": "reflex"}]),
             "Observation.triggeredBy: is not an element of FHIR R4 Observation")


def test_extension_without_url_is_refused() -> None:
    _refused(_patient(extension=[{"valueString": "x"}]), "Patient.extension[0].url: is required")


def test_extension_with_value_and_extensions_breaks_ext_1() -> None:
    ext = {"url": "http://example.org/x", "valueString": "x", "extension": [{"url": "y", "valueString": "z"}]}
    _refused(_patient(extension=[ext]), "Patient.extension[0]: ext-1")


def test_invalid_id_is_refused() -> None:
    _refused(_patient(id="not valid!"), "Patient.id: must be a FHIR id")
    _refused(_patient(id="x" * 65), "Patient.id: must be a FHIR id")


@pytest.mark.parametrize(("element", "value", "rule"), [
    ("birthDate", "2024-13-01", "must be a FHIR date"),
    ("birthDate", "2024-1-01", "must be a FHIR date"),
    ("birthDate", "2023-02-29", "must be a FHIR date: YYYY, YYYY-MM or YYYY-MM-DD, on a day that exists"),
    ("deceasedDateTime", "2023-04-31T10:00:00Z", "must be a FHIR dateTime"),
    ("multipleBirthInteger", 2**31, "must be a JSON integer"),
    ("multipleBirthInteger", 1.5, "must be a JSON integer"),
])
def test_primitive_formats_are_the_spec_regexes(element: str, value: Any, rule: str) -> None:
    _refused(_patient(**{element: value}), f"Patient.{element}: {rule}")


def test_bad_datetime_does_not_echo_the_value() -> None:
    with pytest.raises(InvalidRecord) as caught:
        validate_fhir(_observation(effectiveDateTime="2024-05-01 09:30"))
    assert "Observation.effectiveDateTime: must be a FHIR dateTime" in str(caught.value)
    assert "09:30" not in str(caught.value)


def test_bundle_entry_that_is_not_a_resource_is_refused() -> None:
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"status": "final"}}]}
    _refused(bundle, "Bundle.entry[0].resource: has no resourceType")
    [entry] = validate_bundle_entries(bundle)
    assert (entry.index, entry.record) == (0, None)
    assert entry.problems == (Problem("Bundle.entry[0].resource", entry.problems[0].rule),)
    assert "has no resourceType" in entry.problems[0].rule


def test_bundle_entries_are_judged_one_by_one() -> None:
    good = _patient()
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:7f2c1e36-7b0e-4c39-9f3a-2a7d4c2d1e01", "resource": good},
        {"resource": _observation(status="banana")},
        {"fullUrl": "not a uri", "resource": _patient(id="p2")},
    ]}

    first, second, third = validate_bundle_entries(bundle)

    assert first.record is not None and first.record.canonical == validate_fhir(good).canonical
    assert first.full_url == "urn:uuid:7f2c1e36-7b0e-4c39-9f3a-2a7d4c2d1e01" and first.problems == ()
    assert second.record is None and [str(p) for p in second.problems] == [
        f"Bundle.entry[1].resource.status: 'banana' is not in the required value set {VS}observation-status"]
    assert third.record is None and third.problems[0].path == "Bundle.entry[2].fullUrl"


def test_bundle_level_problems_refuse_the_whole_bundle() -> None:
    with pytest.raises(InvalidRecord, match=f"Bundle.type: 'banana' is not in the required value set {VS}bundle-type"):
        validate_bundle_entries({"resourceType": "Bundle", "type": "banana", "entry": [{"resource": _patient()}]})
    with pytest.raises(InvalidRecord, match="expected a FHIR Bundle"):
        validate_bundle_entries(_patient())


def test_bundle_entry_of_a_data_type_is_refused() -> None:
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Quantity"}}]}
    _refused(bundle, "Bundle.entry[0].resource.resourceType: 'Quantity' is not a FHIR R4 resource type")


@pytest.mark.parametrize("resource", [
    {"resourceType": "MedicinalProduct", "name": [{"productName": "Aspirin 100 mg"}]},
    {"resourceType": "EffectEvidenceSynthesis", "status": "draft", "population": {"reference": "Group/1"},
     "exposure": {"reference": "EvidenceVariable/1"}, "exposureAlternative": {"reference": "EvidenceVariable/2"},
     "outcome": {"reference": "EvidenceVariable/3"}},
    {"resourceType": "RiskEvidenceSynthesis", "status": "draft", "population": {"reference": "Group/1"},
     "outcome": {"reference": "EvidenceVariable/3"}},
    {"resourceType": "SubstanceSpecification", "code": [{"comment": "x"}]},
], ids=lambda r: r["resourceType"])
def test_r4_only_resources_are_accepted(resource: dict[str, Any]) -> None:
    assert validate_fhir(resource).resource_type == resource["resourceType"]


@pytest.mark.parametrize("resource_type", ["Citation", "NutritionProduct", "SubscriptionTopic", "SubscriptionStatus",
                                           "MedicinalProductDefinition", "ActorDefinition", "Requirements"])
def test_r4b_and_r5_only_resource_types_are_refused(resource_type: str) -> None:
    _refused({"resourceType": resource_type, "status": "active"},
             f"{resource_type}.resourceType: '{resource_type}' is not a FHIR R4 resource type")


def test_invariant_failure_names_the_key_and_can_be_switched_off() -> None:
    period = _observation(effectivePeriod={"start": "2024-05-02", "end": "2024-05-01"})
    quantity = _observation(valueQuantity={"value": 1, "code": "mg"})  # qty-3: a code needs its system

    assert Problem("Observation.valueQuantity", "qty-3: If a code for the unit is present, the system SHALL also be present") \
        in fhir_problems(quantity, invariants=True)
    assert fhir_problems(quantity, invariants=False) == []
    obs_3 = fhir_problems(_observation(referenceRange=[{"appliesTo": [{"text": "adult"}]}]), invariants=True)
    assert [p.rule.split(":")[0] for p in obs_3] == ["obs-3"]
    assert [(p.path, p.rule[:6]) for p in fhir_problems(period, invariants=True)] == [("Observation.effectivePeriod", "per-1:")]


@pytest.mark.parametrize(("start", "end", "valid"), [
    ("2024-05-01", "2024-05-02", True),
    ("2024-05-02", "2024-05-01", False),
    ("2024", "2023-12", False),
    ("2024-05-01", "2024-05-01T10:00:00Z", True),  # different precision, same day: empty, passes
    ("2024-05-01T10:00:00+01:00", "2024-05-01T09:30:00Z", True),  # 09:00Z <= 09:30Z
    ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00.5Z", True),
    ("2024-05-01T10:00:01Z", "2024-05-01T10:00:00.5Z", False),
])
def test_per_1_compares_datetimes_as_fhirpath_does(start: str, end: str, valid: bool) -> None:
    problems = fhir_problems(_observation(effectivePeriod={"start": start, "end": end}), invariants=True)

    assert problems == ([] if valid else [Problem("Observation.effectivePeriod", "per-1: If present, start SHALL have a lower value than end")])


@pytest.mark.parametrize(("low", "high", "valid"), [
    ({"value": 1, "unit": "mg"}, {"value": 2, "unit": "mg"}, True),
    ({"value": 3, "unit": "mg"}, {"value": 2, "unit": "mg"}, False),
    ({"value": 3, "system": "http://unitsofmeasure.org", "code": "g"}, {"value": 2, "system": "http://unitsofmeasure.org", "code": "kg"}, True),
])
def test_rng_2_compares_quantities_in_the_same_unit(low: dict[str, Any], high: dict[str, Any], valid: bool) -> None:
    problems = fhir_problems(_observation(valueRange={"low": low, "high": high}), invariants=True)

    assert problems == ([] if valid else [Problem("Observation.valueRange", "rng-2: If present, low SHALL have a lower value than high")])


def test_invalid_json_and_non_objects_are_refused() -> None:
    _refused(b"{not json", "not valid JSON")
    _refused("[]", "must be a JSON object")


def test_codeable_concept_with_required_binding_needs_a_coding_from_the_value_set() -> None:
    clinical = "http://terminology.hl7.org/CodeSystem/condition-clinical"

    def condition(status: Any) -> dict[str, Any]:
        return {"resourceType": "Condition", "subject": {"reference": "Patient/p1"}, "clinicalStatus": status}

    assert fhir_problems(condition({"coding": [{"system": clinical, "code": "active"}]})) == []
    rule = f"has no coding from the required value set {VS}condition-clinical"
    _refused(condition({"coding": [{"system": clinical, "code": "banana"}]}), f"Condition.clinicalStatus: {rule}")
    _refused(condition({"coding": [{"code": "active"}]}), f"Condition.clinicalStatus: {rule}")  # no system
    _refused(condition({"text": "active"}), f"Condition.clinicalStatus: {rule}")
    _refused(condition({"coding": [{"system": [clinical], "code": {"c": 1}}]}), "Condition.clinicalStatus.coding[0].system: must be a single value")


def test_invariants_switched_off_for_a_deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    quantity = _observation(valueQuantity={"value": 1, "code": "mg"})
    monkeypatch.setenv("EHR_FHIR_INVARIANTS", "0")

    assert validate_fhir(quantity).resource_type == "Observation"
    with pytest.raises(InvalidRecord, match="Observation.valueQuantity: qty-3"):
        validate_fhir(quantity, invariants=True)


def test_invariants_using_has_value_are_evaluated() -> None:
    document = {"resourceType": "Bundle", "type": "document", "identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:1"}}
    age = {"resourceType": "Patient", "extension": [{"url": "http://example.org/age",
                                                     "valueAge": {"value": -3, "system": "http://unitsofmeasure.org", "code": "a"}}]}

    assert [(p.path, p.rule[:7]) for p in fhir_problems(document, invariants=True)] == [("Bundle", "bdl-10:")]
    assert [(p.path, p.rule[:6]) for p in fhir_problems(age, invariants=True)] == [("Patient.extension[0].valueAge", "age-1:")]
    assert fhir_problems({**document, "timestamp": "2024-05-01T09:00:00Z"}, invariants=True) == []


def test_contained_resource_nobody_references_breaks_dom_3() -> None:
    contained = {"resourceType": "Patient", "id": "p", "gender": "female"}
    orphan = _observation(contained=[contained])
    referenced = _observation(contained=[contained], subject={"reference": "#p"})

    assert [(p.path, p.rule[:6]) for p in fhir_problems(orphan, invariants=True)] == [("Observation", "dom-3:")]
    assert fhir_problems(referenced, invariants=True) == []
    assert "dom-3" not in {s.key for s in skipped()}
