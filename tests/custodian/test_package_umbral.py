"""The optional Umbral section of the package header: round trips, binding, old format unchanged."""

import os

import pytest
import umbral_pre
from hypothesis import given, settings
from hypothesis import strategies as st

from ehr_client.crypto import WRAPPED_KEY_SIZE
from ehr_client.errors import DecryptionError
from ehr_client.package import FORMAT, FORMAT_UMBRAL, PackageHeader, UmbralSeal, Wrap, max_header_size, parse_header

PATIENT = umbral_pre.SecretKey.random()
PATIENT_PUBLIC = bytes(PATIENT.public_key().to_compressed_bytes())
GRANTEE = umbral_pre.SecretKey.random()


def _wrap() -> Wrap:
    return Wrap(os.urandom(20), 1, os.urandom(WRAPPED_KEY_SIZE))


def _cfrags(seal: UmbralSeal, threshold: int = 2, shares: int = 3) -> list[umbral_pre.VerifiedCapsuleFrag]:
    kfrags = umbral_pre.generate_kfrags(PATIENT, GRANTEE.public_key(), umbral_pre.Signer(PATIENT), threshold, shares,
                                        True, True)
    capsule = umbral_pre.Capsule.from_bytes(seal.capsule)
    return [umbral_pre.reencrypt(capsule, k) for k in kfrags[:threshold]]


def test_header_without_umbral_section_keeps_format_one_bytes():
    header = PackageHeader(3, "application/fhir+json", (_wrap(),))
    data = header.to_bytes()
    assert data[4] == FORMAT
    assert parse_header(data + b"envelope") == (header, len(data))


@settings(derandomize=True, max_examples=25, deadline=None)
@given(version=st.integers(1, 2**63), record_id=st.binary(min_size=32, max_size=32),
       wraps=st.integers(0, 3), media=st.sampled_from(["application/fhir+json", "application/pdf"]))
def test_header_with_umbral_section_round_trips(version, record_id, wraps, media):
    data_key = os.urandom(32)
    seal = UmbralSeal.create(PATIENT_PUBLIC, 7, record_id, version, data_key)
    header = PackageHeader(version, media, tuple(_wrap() for _ in range(wraps)), seal)
    data = header.to_bytes()

    parsed, offset = parse_header(data + b"envelope")

    assert data[4] == FORMAT_UMBRAL and parsed == header and offset == len(data) <= max_header_size()
    assert parsed.umbral is not None
    assert parsed.umbral.open_original(bytes(PATIENT.to_be_bytes()), record_id, version) == data_key


def test_grantee_opens_data_key_from_threshold_of_cfrags():
    record_id, data_key = os.urandom(32), os.urandom(32)
    seal = UmbralSeal.create(PATIENT_PUBLIC, 1, record_id, 1, data_key)
    opened = seal.open_reencrypted(bytes(GRANTEE.to_be_bytes()), PATIENT_PUBLIC, _cfrags(seal), record_id, 1)
    assert opened == data_key


def test_capsule_copied_to_another_record_or_version_opens_nothing():
    record_id = os.urandom(32)
    seal = UmbralSeal.create(PATIENT_PUBLIC, 1, record_id, 1, os.urandom(32))
    secret = bytes(PATIENT.to_be_bytes())
    with pytest.raises(DecryptionError):
        seal.open_original(secret, os.urandom(32), 1)
    with pytest.raises(DecryptionError):
        seal.open_original(secret, record_id, 2)
    with pytest.raises(DecryptionError):
        seal.open_reencrypted(bytes(GRANTEE.to_be_bytes()), PATIENT_PUBLIC, _cfrags(seal)[:1], record_id, 1)


def test_truncated_umbral_section_is_refused():
    seal = UmbralSeal.create(PATIENT_PUBLIC, 1, os.urandom(32), 1, os.urandom(32))
    data = PackageHeader(1, "application/pdf", (), seal).to_bytes()
    for cut in (1, 10, len(seal.ciphertext) + 3):
        with pytest.raises(DecryptionError):
            parse_header(data[:-cut])
