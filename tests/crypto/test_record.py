from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ehr_client.crypto import (
    HEADER_SIZE,
    MIN_CHUNK_SIZE,
    TAG_SIZE,
    decrypt_record,
    encrypt_record,
    encrypted_size,
    generate_data_key,
)
from ehr_client.errors import DecryptionError, InvalidRecord
from tests.crypto.helpers import FIXED, OTHER_RECORD_ID, RECORD_ID, flip

FHIR = b'{"resourceType":"Observation","status":"final","valueQuantity":{"unit":"g/dL","value":1.0}}'


@pytest.fixture(scope="module")
def record():
    return encrypt_record(FHIR, record_id=RECORD_ID, version=7)


@FIXED
@given(
    plaintext=st.binary(max_size=3000),
    chunk_size=st.sampled_from([MIN_CHUNK_SIZE, 100, 1024, 1 << 20]),
    version=st.integers(0, 2**64 - 1),
)
def test_record_round_trips(plaintext, chunk_size, version):
    sealed = encrypt_record(plaintext, record_id=RECORD_ID, version=version, chunk_size=chunk_size)
    assert len(sealed.ciphertext) == encrypted_size(len(plaintext), chunk_size=chunk_size)
    assert decrypt_record(sealed.ciphertext, sealed.data_key, record_id=RECORD_ID, version=version) == plaintext


def test_small_record_is_header_plus_one_chunk(record):
    assert len(record.ciphertext) == HEADER_SIZE + len(FHIR) + TAG_SIZE
    assert record.ciphertext[:5] == b"EHRE\x01"


def test_encrypt_record_returns_sha256_of_ciphertext(record):
    assert record.sha256 == hashlib.sha256(record.ciphertext).digest()


def test_encrypt_record_uses_fresh_key_and_nonce_each_time(record):
    again = encrypt_record(FHIR, record_id=RECORD_ID, version=7)
    assert again.data_key != record.data_key
    assert again.ciphertext != record.ciphertext


def test_record_repr_hides_key_and_plaintext(record):
    text = repr(record)
    assert record.data_key.hex() not in text and "redacted" in text
    assert record.ciphertext.hex() not in text


def test_decrypt_fails_with_wrong_key(record):
    with pytest.raises(DecryptionError):
        decrypt_record(record.ciphertext, generate_data_key(), record_id=RECORD_ID, version=7)


@pytest.mark.parametrize("key", [b"", bytes(16), bytes(33)])
def test_decrypt_fails_with_key_of_wrong_size(record, key):
    with pytest.raises(DecryptionError):
        decrypt_record(record.ciphertext, key, record_id=RECORD_ID, version=7)


def test_decrypt_fails_with_other_record_id(record):
    with pytest.raises(DecryptionError):
        decrypt_record(record.ciphertext, record.data_key, record_id=OTHER_RECORD_ID, version=7)


@pytest.mark.parametrize("version", [6, 8, 0, 2**64 - 1])
def test_decrypt_fails_with_other_version(record, version):
    with pytest.raises(DecryptionError):
        decrypt_record(record.ciphertext, record.data_key, record_id=RECORD_ID, version=version)


def test_decrypt_fails_when_header_byte_flipped(record):
    for index in range(HEADER_SIZE):
        with pytest.raises(DecryptionError):
            decrypt_record(flip(record.ciphertext, index), record.data_key, record_id=RECORD_ID, version=7)


def test_decrypt_fails_when_body_byte_flipped(record):
    for index in range(HEADER_SIZE, len(record.ciphertext) - TAG_SIZE):
        with pytest.raises(DecryptionError):
            decrypt_record(flip(record.ciphertext, index, 0x80), record.data_key, record_id=RECORD_ID, version=7)


def test_decrypt_fails_when_tag_byte_flipped(record):
    for index in range(len(record.ciphertext) - TAG_SIZE, len(record.ciphertext)):
        with pytest.raises(DecryptionError):
            decrypt_record(flip(record.ciphertext, index), record.data_key, record_id=RECORD_ID, version=7)


def test_decryption_errors_are_indistinguishable(record):
    failures = [
        lambda: decrypt_record(record.ciphertext, generate_data_key(), record_id=RECORD_ID, version=7),
        lambda: decrypt_record(flip(record.ciphertext, 0), record.data_key, record_id=RECORD_ID, version=7),
        lambda: decrypt_record(record.ciphertext[:-1], record.data_key, record_id=RECORD_ID, version=7),
        lambda: decrypt_record(record.ciphertext, record.data_key, record_id=RECORD_ID, version=8),
    ]
    messages = set()
    for attempt in failures:
        with pytest.raises(DecryptionError) as caught:
            attempt()
        messages.add(str(caught.value))
        error = caught.value
        assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    assert len(messages) == 1


@pytest.mark.parametrize("record_id", [b"", bytes(31), bytes(33), "00" * 32])
def test_encrypt_rejects_malformed_record_id(record_id):
    with pytest.raises(InvalidRecord, match="32 bytes"):
        encrypt_record(FHIR, record_id=record_id, version=1)


@pytest.mark.parametrize("version", [-1, 2**64, True, 1.0])
def test_encrypt_rejects_version_outside_uint64(version):
    with pytest.raises(InvalidRecord, match="version"):
        encrypt_record(FHIR, record_id=RECORD_ID, version=version)


def test_decrypt_rejects_malformed_record_id(record):
    with pytest.raises(InvalidRecord):
        decrypt_record(record.ciphertext, record.data_key, record_id=bytes(31), version=7)


def test_decrypt_accepts_memoryview_and_bytearray(record):
    for blob in (memoryview(record.ciphertext), bytearray(record.ciphertext)):
        assert decrypt_record(blob, record.data_key, record_id=RECORD_ID, version=7) == FHIR
