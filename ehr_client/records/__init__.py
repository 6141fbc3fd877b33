"""Records: FHIR validation, canonical encoding, opaque files, and their on-chain scopes."""

from ehr_client.records.canonical import canonicalize, parse_json
from ehr_client.records.fhir import FHIR_VERSION, BundleEntry, Problem, ValidatedRecord, fhir_problems, validate_bundle_entries, validate_fhir
from ehr_client.records.opaque import OpaqueRecord, load_opaque
from ehr_client.records.scopes import (
    ALL_SCOPES,
    Scope,
    describe,
    parse_scopes,
    scope_for_category,
    scope_for_resource,
)

__all__ = [
    "ALL_SCOPES",
    "BundleEntry",
    "FHIR_VERSION",
    "OpaqueRecord",
    "Problem",
    "Scope",
    "ValidatedRecord",
    "canonicalize",
    "describe",
    "fhir_problems",
    "load_opaque",
    "parse_json",
    "parse_scopes",
    "scope_for_category",
    "scope_for_resource",
    "validate_bundle_entries",
    "validate_fhir",
]
