"""validate_fhir: valid resources get the right scope and canonical bytes; bad ones say what to fix."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ehr_client.errors import EHRError, InvalidRecord
from ehr_client.records import FHIR_VERSION, Scope, validate_fhir
from tests.records.conftest import Factory

V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"


def test_validation_is_against_fhir_r4_401() -> None:
    assert FHIR_VERSION == "4.0.1"


@pytest.mark.parametrize(
    ("category", "scope"),
    [("laboratory", Scope.LAB), ("vital-signs", Scope.VITALS), ("imaging", Scope.IMAGING),
     ("social-history", Scope.SOCIAL_HISTORY), ("survey", Scope.OTHER), (None, Scope.OTHER)],
)
def test_observation_validates_with_scope_from_category(observation: Factory, category: str | None, scope: Scope) -> None:
    record = validate_fhir(observation(category))

    assert record.resource_type == "Observation"
    assert record.scope == scope


def test_condition_validates_as_conditions(condition: Factory) -> None:
    record = validate_fhir(condition())

    assert (record.resource_type, record.scope) == ("Condition", Scope.CONDITIONS)


def test_medication_request_validates_as_medications(medication_request: Factory) -> None:
    record = validate_fhir(medication_request())

    assert (record.resource_type, record.scope) == ("MedicationRequest", Scope.MEDICATIONS)


def test_document_reference_validates_as_documents(document_reference: Factory) -> None:
    record = validate_fhir(document_reference())

    assert (record.resource_type, record.scope) == ("DocumentReference", Scope.DOCUMENTS)


def test_mental_health_note_type_makes_document_mental_health(document_reference: Factory) -> None:
    record = validate_fhir(document_reference("34904-3"))  # Mental health Progress note

    assert record.scope == Scope.MENTAL_HEALTH


@pytest.mark.parametrize("label", ["PSY", "PSYTHPN", "ETH", "SUD"])
def test_sensitivity_label_overrides_category(condition: Factory, label: str) -> None:
    resource = condition(meta={"security": [{"system": V3_ACT_CODE, "code": label}]})

    assert validate_fhir(resource).scope == Scope.MENTAL_HEALTH


def test_document_security_label_makes_document_mental_health(document_reference: Factory) -> None:
    resource = document_reference(securityLabel=[{"coding": [{"system": V3_ACT_CODE, "code": "PSYTHPN"}]}])

    assert validate_fhir(resource).scope == Scope.MENTAL_HEALTH


def test_condition_coded_icd10_chapter_f_is_mental_health(condition: Factory) -> None:
    resource = condition(code={"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F32.1"}]})

    assert validate_fhir(resource).scope == Scope.MENTAL_HEALTH


@pytest.mark.parametrize(("section", "scope"), [("HM", Scope.LAB), ("RAD", Scope.IMAGING), ("GE", Scope.GENOMICS), ("OTH", Scope.OTHER)])
def test_diagnostic_report_scope_follows_service_section(section: str, scope: Scope) -> None:
    report = {
        "resourceType": "DiagnosticReport",
        "status": "final",
        "category": [{"coding": [{"system": V2_0074, "code": section}]}],
        "code": {"text": "report"},
    }

    assert validate_fhir(report).scope == scope


def test_bundle_scope_is_union_of_entries(observation: Factory, condition: Factory) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": observation("laboratory")}, {"resource": condition()}],
    }

    assert validate_fhir(bundle).scope == Scope.LAB | Scope.CONDITIONS


def test_dict_text_bytes_and_path_give_same_canonical_bytes(observation: Factory, tmp_path: Path) -> None:
    resource = observation()
    text = json.dumps(resource, indent=4)
    path = tmp_path / "observation.json"
    path.write_text(text, encoding="utf-8")

    results = {validate_fhir(source).canonical for source in (resource, text, text.encode(), path)}

    assert len(results) == 1


def test_canonical_bytes_keep_decimal_precision_from_text() -> None:
    text = '{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.00}}'

    assert b'"value":1.00' in validate_fhir(text).canonical


def test_canonical_bytes_revalidate_to_themselves(observation: Factory) -> None:
    first = validate_fhir(observation(valueQuantity={"value": Decimal("7.250"), "unit": "mmol/L"}))

    assert validate_fhir(first.canonical).canonical == first.canonical


def test_record_repr_hides_content(observation: Factory) -> None:
    assert "Hemoglobin" not in repr(validate_fhir(observation()))


def _problem(source: Any) -> str:
    with pytest.raises(InvalidRecord) as caught:
        validate_fhir(source)
    return str(caught.value)


def test_missing_status_names_the_field(observation: Factory) -> None:
    resource = observation()
    del resource["status"]

    assert "Observation.status: is required" in _problem(resource)


def test_missing_code_names_the_field(observation: Factory) -> None:
    resource = observation()
    del resource["code"]

    assert "Observation.code: is required" in _problem(resource)


def test_wrong_type_names_the_nested_field(observation: Factory) -> None:
    resource = observation(code={"coding": [{"system": "http://loinc.org", "code": 718}]})

    assert "Observation.code.coding[0].code: must be a JSON string" in _problem(resource)


def test_unknown_element_names_it(observation: Factory) -> None:
    assert "Observation.valueQuantityy: is not an element" in _problem(observation(valueQuantityy={"value": 1}))


def test_bad_datetime_says_the_format_without_echoing_the_value(observation: Factory) -> None:
    message = _problem(observation(effectiveDateTime="SECRET-2024-99-99"))

    assert "Observation.effectiveDateTime: must be a FHIR dateTime" in message
    assert "SECRET" not in message


def test_two_choice_values_say_keep_one(observation: Factory) -> None:
    assert "keep one" in _problem(observation(valueString="high"))


def test_missing_choice_value_says_add_one(medication_request: Factory) -> None:
    resource = medication_request()
    del resource["medicationCodeableConcept"]

    assert "MedicationRequest.medication[x]: is required: add one of medicationCodeableConcept, medicationReference" in _problem(resource)


@pytest.mark.parametrize(
    ("extra", "path"),
    [({"note": []}, "Observation.note: empty array"), ({"issued": None}, "Observation.issued: null"),
     ({"code": {}}, "Observation.code: empty object"), ({"id": ""}, "Observation.id: empty string")],
)
def test_fhir_json_rules_are_enforced(observation: Factory, extra: dict[str, Any], path: str) -> None:
    assert path in _problem(observation(**extra))


def test_unknown_resource_type_is_rejected() -> None:
    assert "'Observaton' is not a FHIR R4 resource type" in _problem({"resourceType": "Observaton", "status": "final"})


def test_datatype_as_resource_type_is_rejected() -> None:
    assert "'Quantity' is not a FHIR R4 resource type" in _problem({"resourceType": "Quantity", "value": 1})


def test_unknown_contained_resource_type_names_its_path(observation: Factory) -> None:
    assert "Observation.contained[0].resourceType: 'Specimin'" in _problem(observation(contained=[{"resourceType": "Specimin", "id": "s"}]))


def test_error_inside_bundle_entry_names_its_path(observation: Factory) -> None:
    entry = observation()
    del entry["status"]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": entry}]}

    assert "Bundle.entry[0].resource.status: is required" in _problem(bundle)


def test_missing_resource_type_is_rejected() -> None:
    assert "no resourceType" in _problem({"status": "final"})


@pytest.mark.parametrize("source", ['{"resourceType": "Observation",', b"\xff\xfe", "[1, 2]", "42"])
def test_text_that_is_not_a_json_object_is_rejected(source: str | bytes) -> None:
    with pytest.raises(InvalidRecord):
        validate_fhir(source)


def test_duplicate_member_names_are_rejected() -> None:
    assert "appears twice" in _problem('{"resourceType":"Observation","status":"final","status":"final","code":{"text":"x"}}')


def test_missing_file_is_an_invalid_record(tmp_path: Path) -> None:
    assert "cannot read FHIR file 'absent.json'" in _problem(tmp_path / "absent.json")


def test_many_problems_are_summarised(observation: Factory) -> None:
    resource = observation(a1=1, a2=1, a3=1, a4=1, a5=1, a6=1, a7=1)

    assert "and 2 more problems" in _problem(resource)


def test_invalid_record_is_a_value_error_and_an_ehr_error() -> None:
    with pytest.raises(ValueError):
        validate_fhir("{}")
    with pytest.raises(EHRError):
        validate_fhir("{}")


@pytest.mark.parametrize("resource_type", ["Resource", "DomainResource", "SubscriptionTopic", "NutritionProduct"])
def test_abstract_and_r4b_only_types_are_not_r4_resources(resource_type: str) -> None:
    assert "is not a FHIR R4 resource type" in _problem({"resourceType": resource_type, "id": "x"})
