from __future__ import annotations

import base64
import hashlib
import itertools
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ehr_client.errors import InvalidRecord
from ehr_client.storage.cid import (
    DAG_PB,
    RAW,
    CidHasher,
    cid_for_bytes,
    cid_for_stream,
    cid_from_bytes,
    cid_from_digest,
    cid_to_bytes,
    decode_cid,
    decode_varint,
    encode_varint,
    is_raw,
    parse_cid,
)
from ehr_client.storage.kubo import KuboDaemon

HELLO_CID = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
EMPTY_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
DAG_PB_CID = "bafybeid72rlr23lj44nmbqecty5trfjddqu4g4fhfrklplndlp2hmrh2f4"
SHA = hashlib.sha256(b"x").digest()


def test_cid_of_hello_world_matches_known_vector() -> None:
    assert cid_for_bytes(b"hello world\n") == HELLO_CID


def test_cid_of_empty_bytes_matches_known_vector() -> None:
    assert cid_for_bytes(b"") == EMPTY_CID


def test_binary_cid_is_version_codec_multihash_digest() -> None:
    binary = cid_to_bytes(HELLO_CID)
    assert binary == b"\x01\x55\x12\x20" + hashlib.sha256(b"hello world\n").digest()
    assert cid_from_bytes(binary) == HELLO_CID


def test_dag_pb_cid_is_accepted_and_not_raw() -> None:
    info = decode_cid(DAG_PB_CID)
    assert (info.version, info.codec) == (1, DAG_PB)
    assert not is_raw(DAG_PB_CID)
    assert is_raw(HELLO_CID)
    assert cid_from_bytes(cid_to_bytes(DAG_PB_CID)) == DAG_PB_CID


@settings(derandomize=True, max_examples=200)
@given(st.binary(max_size=4096), st.lists(st.integers(min_value=0, max_value=4096), max_size=8))
def test_cid_for_stream_equals_cid_for_bytes_whatever_the_split(data: bytes, cuts: list[int]) -> None:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    chunks = [data[a:b] for a, b in itertools.pairwise(points)]
    assert cid_for_stream(chunks) == cid_for_bytes(data)
    hasher = CidHasher()
    for chunk in chunks:
        hasher.update(chunk)
    assert (hasher.cid(), hasher.size) == (cid_for_bytes(data), len(data))


@settings(derandomize=True, max_examples=200)
@given(st.binary(min_size=32, max_size=32), st.sampled_from([RAW, DAG_PB]))
def test_cid_string_and_bytes_round_trip(digest: bytes, codec: int) -> None:
    cid = cid_from_digest(digest, codec=codec)
    assert cid.startswith("b")
    assert parse_cid(cid) == cid
    assert cid_from_bytes(cid_to_bytes(cid)) == cid
    assert decode_cid(cid).digest == digest


@settings(derandomize=True, max_examples=300)
@given(st.integers(min_value=0, max_value=(1 << 63) - 1))
def test_varint_round_trips(value: int) -> None:
    encoded = encode_varint(value)
    assert decode_varint(encoded) == (value, len(encoded))


def _raw_cid_with(*, version: int = 1, codec: int = RAW, hash_code: int = 0x12, length: int = 32) -> str:
    binary = encode_varint(version) + encode_varint(codec) + encode_varint(hash_code) + encode_varint(length)
    return "b" + base64.b32encode(binary + SHA[:length]).decode().lower().rstrip("=")


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "b",
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
        HELLO_CID.upper(),
        "z" + HELLO_CID[1:],
        HELLO_CID[:-5],
        HELLO_CID + "a",
        HELLO_CID[:-1] + "1",
        HELLO_CID[:-1] + "v",
        "bafkrei/../../etc/passwd",
        " " + HELLO_CID,
        _raw_cid_with(codec=0x71),
        _raw_cid_with(hash_code=0x13),
        _raw_cid_with(length=20),
        _raw_cid_with(version=2),
        "b" + "a" * 200,
    ],
)
def test_parse_cid_rejects_garbage(garbage: str) -> None:
    with pytest.raises(InvalidRecord):
        parse_cid(garbage)


@pytest.mark.parametrize("garbage", [None, 42, b"bafkrei", ["bafkrei"]])
def test_parse_cid_rejects_non_strings(garbage: object) -> None:
    with pytest.raises(InvalidRecord):
        parse_cid(garbage)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\x12\x20" + SHA,
        b"\x01\x55\x12\x20" + SHA[:31],
        b"\x01\x55\x12\x20" + SHA + b"\x00",
        b"\x01\x55\x12\x80\x00" + SHA,
        b"\x01\x55\x12",
        b"\x01\x55\x12\x20",
        b"\xff" * 12,
        b"\x02\x55\x12\x20" + SHA,
    ],
)
def test_cid_from_bytes_rejects_garbage(garbage: bytes) -> None:
    with pytest.raises(InvalidRecord):
        cid_from_bytes(garbage)


@settings(derandomize=True, max_examples=300)
@given(st.text(max_size=80))
def test_parse_cid_raises_only_invalid_record_on_arbitrary_text(text: str) -> None:
    try:
        parse_cid(text)
    except InvalidRecord:
        pass


@settings(derandomize=True, max_examples=300)
@given(st.binary(max_size=64))
def test_cid_from_bytes_raises_only_invalid_record_on_arbitrary_bytes(data: bytes) -> None:
    try:
        cid = cid_from_bytes(data)
    except InvalidRecord:
        return
    assert cid_to_bytes(cid) == data


def test_invalid_cid_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="invalid CID"):
        parse_cid("not-a-cid")


@pytest.mark.kubo
@pytest.mark.parametrize("size", [0, 1, 12, 1000, 262_144])
def test_cid_for_bytes_matches_ipfs_add_cli(kubo: KuboDaemon, kubo_binary: Path, size: int) -> None:
    data = b"hello world\n" if size == 12 else bytes(range(256)) * (size // 256) + bytes(size % 256)
    api = kubo.api_url.replace("http://", "/ip4/").replace(":", "/tcp/")
    result = subprocess.run(
        [str(kubo_binary), "--api", api, "add", "--cid-version=1", "--raw-leaves", "--pin=false", "-Q"],
        input=data,
        capture_output=True,
        check=True,
        timeout=30,
    )
    assert result.stdout.decode().strip() == cid_for_bytes(data)
