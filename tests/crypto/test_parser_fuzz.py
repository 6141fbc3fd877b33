"""Untrusted envelope bytes: anything malformed must end in DecryptionError, quickly and cheaply."""

from __future__ import annotations

import io
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ehr_client.crypto import HEADER_SIZE, MAX_CHUNK_SIZE, decrypt_record, decrypt_stream, generate_data_key, iter_encrypt
from ehr_client.errors import DecryptionError
from tests.crypto.helpers import FIXED, RECORD_ID

KEY = generate_data_key()
ENVELOPE = b"".join(iter_encrypt(b"x" * 300, KEY, record_id=RECORD_ID, version=1, chunk_size=128))
FUZZ = settings(FIXED, max_examples=300)


def valid_looking_header(chunk_size: int, rest: bytes) -> bytes:
    return b"EHRE\x01" + chunk_size.to_bytes(4, "big") + rest


@FUZZ
@given(blob=st.binary(max_size=600))
def test_decrypt_raises_only_decryption_error_on_random_bytes(blob):
    with pytest.raises(DecryptionError):
        decrypt_record(blob, KEY, record_id=RECORD_ID, version=1)


@FUZZ
@given(chunk_size=st.integers(0, 2**32 - 1), rest=st.binary(max_size=400))
def test_decrypt_raises_only_decryption_error_on_random_bytes_after_valid_magic(chunk_size, rest):
    with pytest.raises(DecryptionError):
        decrypt_record(valid_looking_header(chunk_size, rest), KEY, record_id=RECORD_ID, version=1)


mutations = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, len(ENVELOPE) - 1), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, len(ENVELOPE) - 1), st.integers(1, 200)),
    st.tuples(st.just("insert"), st.integers(0, len(ENVELOPE)), st.binary(min_size=1, max_size=40)),
    st.tuples(st.just("truncate"), st.integers(0, len(ENVELOPE) - 1), st.none()),
)


def mutate(data: bytes, mutation: tuple) -> bytes:
    kind, at, arg = mutation
    at = min(at, len(data))  # earlier mutations may have shortened the data
    if kind == "flip":
        if at == len(data):
            return data
        return data[:at] + bytes([data[at] ^ arg]) + data[at + 1 :]
    if kind == "cut":
        return data[:at] + data[at + arg :]
    if kind == "insert":
        return data[:at] + arg + data[at:]
    return data[:at]


@FUZZ
@given(mutation_list=st.lists(mutations, min_size=1, max_size=3))
def test_decrypt_raises_only_decryption_error_on_mutated_envelope(mutation_list):
    damaged = ENVELOPE
    for mutation in mutation_list:
        damaged = mutate(damaged, mutation)
    if damaged == ENVELOPE:
        return
    with pytest.raises(DecryptionError):
        decrypt_record(damaged, KEY, record_id=RECORD_ID, version=1)
    with pytest.raises(DecryptionError):
        decrypt_stream(io.BytesIO(damaged), io.BytesIO(), KEY, record_id=RECORD_ID, version=1)


def test_forged_large_chunk_size_allocates_nothing_big():
    forged = valid_looking_header(MAX_CHUNK_SIZE, bytes(HEADER_SIZE - 9)) + bytes(100)
    tracemalloc.start()
    try:
        with pytest.raises(DecryptionError):
            decrypt_stream(io.BytesIO(forged), io.BytesIO(), KEY, record_id=RECORD_ID, version=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


@pytest.mark.parametrize("version", [0, 2, 255])
def test_decrypt_fails_on_unknown_format_version(version):
    forged = ENVELOPE[:4] + bytes([version]) + ENVELOPE[5:]
    with pytest.raises(DecryptionError):
        decrypt_record(forged, KEY, record_id=RECORD_ID, version=1)
