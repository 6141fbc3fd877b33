from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ehr_client.crypto import (
    WRAPPED_KEY_SIZE,
    KeyWrapper,
    generate_data_key,
    generate_x25519_keypair,
    record_associated_data,
    unwrap_data_key,
    wrap_data_key,
    x25519_public_key,
)
from ehr_client.crypto.wrap import MAX_WRAPS_PER_EPHEMERAL
from ehr_client.errors import DecryptionError
from tests.crypto.helpers import FIXED, OTHER_RECORD_ID, RECORD_ID, flip

AD = record_associated_data(RECORD_ID, 1)


@pytest.fixture(scope="module")
def keypair():
    return generate_x25519_keypair()


@pytest.fixture(scope="module")
def wrapped(keypair):
    key = generate_data_key()
    return key, wrap_data_key(key, keypair.public_key, associated_data=AD)


@FIXED
@given(data_key=st.binary(min_size=32, max_size=32), version=st.integers(0, 2**64 - 1))
def test_unwrap_returns_the_wrapped_key(keypair, data_key, version):
    ad = record_associated_data(RECORD_ID, version)
    wrapped = wrap_data_key(data_key, keypair.public_key, associated_data=ad)
    assert unwrap_data_key(wrapped, keypair.private_key, associated_data=ad) == data_key


def test_wrapped_key_is_versioned_and_fixed_size(wrapped):
    _, blob = wrapped
    assert len(blob) == WRAPPED_KEY_SIZE == 93
    assert blob[0] == 1


def test_wrap_uses_fresh_ephemeral_key_and_nonce(keypair):
    key = generate_data_key()
    first = wrap_data_key(key, keypair.public_key, associated_data=AD)
    second = wrap_data_key(key, keypair.public_key, associated_data=AD)
    assert first[1:33] != second[1:33]
    assert first[33:45] != second[33:45]


def test_public_key_derives_from_private_key(keypair):
    assert x25519_public_key(keypair.private_key) == keypair.public_key
    assert keypair.private_key.hex() not in repr(keypair)


def test_unwrap_fails_with_wrong_private_key(wrapped):
    _, blob = wrapped
    with pytest.raises(DecryptionError):
        unwrap_data_key(blob, generate_x25519_keypair().private_key, associated_data=AD)


@pytest.mark.parametrize(
    "other_ad",
    [record_associated_data(OTHER_RECORD_ID, 1), record_associated_data(RECORD_ID, 2), b""],
    ids=["other-record", "other-version", "empty"],
)
def test_unwrap_fails_with_other_associated_data(keypair, wrapped, other_ad):
    _, blob = wrapped
    with pytest.raises(DecryptionError):
        unwrap_data_key(blob, keypair.private_key, associated_data=other_ad)


def test_unwrap_fails_when_any_byte_is_flipped(keypair, wrapped):
    _, blob = wrapped
    for index in range(len(blob)):
        for mask in (0x01, 0x80):
            with pytest.raises(DecryptionError):
                unwrap_data_key(flip(blob, index, mask), keypair.private_key, associated_data=AD)


@pytest.mark.parametrize("cut", [0, 1, 45, 92, -1])
def test_unwrap_fails_when_truncated(keypair, wrapped, cut):
    _, blob = wrapped
    with pytest.raises(DecryptionError):
        unwrap_data_key(blob[:cut], keypair.private_key, associated_data=AD)


def test_unwrap_fails_when_extended(keypair, wrapped):
    _, blob = wrapped
    with pytest.raises(DecryptionError):
        unwrap_data_key(blob + b"\x00", keypair.private_key, associated_data=AD)


def test_unwrap_fails_on_low_order_ephemeral_key(keypair, wrapped):
    _, blob = wrapped
    forged = blob[:1] + bytes(32) + blob[33:]
    with pytest.raises(DecryptionError):
        unwrap_data_key(forged, keypair.private_key, associated_data=AD)


@pytest.mark.parametrize("private_key", [b"", bytes(31), bytes(33)])
def test_unwrap_fails_on_malformed_private_key(wrapped, private_key):
    _, blob = wrapped
    with pytest.raises(DecryptionError):
        unwrap_data_key(blob, private_key, associated_data=AD)


@FIXED
@given(blob=st.binary(max_size=120))
def test_unwrap_raises_only_decryption_error_on_random_bytes(keypair, blob):
    with pytest.raises(DecryptionError):
        unwrap_data_key(blob, keypair.private_key, associated_data=AD)


@pytest.mark.parametrize("data_key", [b"", bytes(16), bytes(33)])
def test_wrap_rejects_data_key_of_wrong_size(keypair, data_key):
    with pytest.raises(ValueError, match="32 bytes"):
        wrap_data_key(data_key, keypair.public_key, associated_data=AD)


@pytest.mark.parametrize("public_key", [bytes(32), bytes(31), b"\x01" * 33])
def test_wrap_rejects_unusable_public_key(public_key):
    with pytest.raises(ValueError, match="X25519"):
        wrap_data_key(generate_data_key(), public_key, associated_data=AD)


def test_a_batch_wrapper_shares_one_ephemeral_key_per_reader_with_a_fresh_nonce_each(keypair):
    other = generate_x25519_keypair()
    wrapper = KeyWrapper()
    keys = [generate_data_key() for _ in range(3)]
    ads = [record_associated_data(bytes([i]) * 32, 1) for i in range(3)]

    mine = [wrapper.wrap(k, keypair.public_key, associated_data=ad) for k, ad in zip(keys, ads)]
    theirs = wrapper.wrap(keys[0], other.public_key, associated_data=ads[0])

    assert len({w[1:33] for w in mine}) == 1 and theirs[1:33] != mine[0][1:33]
    assert len({w[33:45] for w in mine}) == 3
    assert [unwrap_data_key(w, keypair.private_key, associated_data=ad) for w, ad in zip(mine, ads)] == keys
    assert unwrap_data_key(theirs, other.private_key, associated_data=ads[0]) == keys[0]


def test_a_wrapped_key_of_a_batch_moved_to_another_record_of_the_batch_does_not_open(keypair):
    """An attacker who swaps two records' wrapped keys (same ephemeral key, same key-encryption key)
    gets no data key: the associated data binds each wrap to its record."""
    wrapper = KeyWrapper()
    first_ad, second_ad = (record_associated_data(bytes([i]) * 32, 1) for i in (1, 2))
    first = wrapper.wrap(generate_data_key(), keypair.public_key, associated_data=first_ad)
    wrapper.wrap(generate_data_key(), keypair.public_key, associated_data=second_ad)

    with pytest.raises(DecryptionError):
        unwrap_data_key(first, keypair.private_key, associated_data=second_ad)


def test_a_batch_wrapper_makes_a_new_ephemeral_key_after_its_limit(keypair):
    wrapper = KeyWrapper()
    ephemerals = [wrapper.wrap(generate_data_key(), keypair.public_key, associated_data=AD)[1:33]
                  for _ in range(MAX_WRAPS_PER_EPHEMERAL + 1)]

    assert len(set(ephemerals[:MAX_WRAPS_PER_EPHEMERAL])) == 1
    assert ephemerals[-1] != ephemerals[0]


@pytest.mark.parametrize("public_key", [b"", b"\x00" * 31])
def test_a_batch_wrapper_refuses_an_unusable_public_key(public_key):
    with pytest.raises(ValueError, match="not a usable"):
        KeyWrapper().wrap(generate_data_key(), public_key, associated_data=AD)
