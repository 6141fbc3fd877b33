"""The client: one record model and its write, read, locate and share pipelines, behind `EHRClient`."""

from ehr_client.audit import AuditEntry
from ehr_client.client.consent import SignedConsent
from ehr_client.client.facade import ACCESS, EHRClient
from ehr_client.client.model import (
    FHIR_MEDIA_TYPE,
    BatchProof,
    GrantResult,
    Identity,
    KeyRelease,
    Listing,
    ReadResult,
    RecordInfo,
    Skipped,
    VerifyResult,
    WriteResult,
    umbral_public_key,
)
from ehr_client.errors import DecryptionError

__all__ = [
    "ACCESS", "FHIR_MEDIA_TYPE", "AuditEntry", "BatchProof", "DecryptionError", "EHRClient", "GrantResult", "Identity",
    "KeyRelease", "Listing", "ReadResult", "RecordInfo", "SignedConsent", "Skipped", "VerifyResult", "WriteResult",
    "umbral_public_key",
]
