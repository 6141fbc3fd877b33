"""Manifests are parsed as hostile input: anything but the exact format is a typed error."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ehr_client.errors import InvalidRecord
from ehr_client.storage._fragment_codec import Layout
from ehr_client.storage._fragment_manifest import FragmentEntry, InvalidManifest, Manifest
from ehr_client.storage.cid import cid_for_bytes
from tests.fragments.conftest import FIXED


def _manifest(size: int = 1000, k: int = 3, n: int = 5) -> Manifest:
    layout = Layout(size, k, n, 3 * 1024)
    return Manifest(
        size=size, sha256="ab" * 32, k=k, n=n, segment_size=3 * 1024, nonce=bytes(16),
        fragments=tuple(
            FragmentEntry(i, f"n{i}", cid_for_bytes(bytes([i])), f"{i:02x}" * 32, layout.fragment_size)
            for i in range(n)
        ),
    )


def _json() -> dict[str, Any]:
    return json.loads(_manifest().to_bytes())


def _encode(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def test_manifest_round_trips_through_canonical_bytes() -> None:
    manifest = _manifest()
    data = manifest.to_bytes()
    assert Manifest.from_bytes(data) == manifest
    assert json.loads(data)["padding"] == manifest.layout.padding == 2
    assert b" " not in data


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        target: Any = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda doc: doc.pop(key)


MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "other format": _set(("format",), "ehr-fragments/2"),
    "k above n": _set(("k",), 6),
    "k zero": _set(("k",), 0),
    "k as bool": _set(("k",), True),
    "k as float": _set(("k",), 3.0),
    "n above zfec limit": _set(("n",), 257),
    "negative size": _set(("size",), -1),
    "size as string": _set(("size",), "1000"),
    "huge size": _set(("size",), 1 << 60),
    "segment not multiple of k": _set(("segment_size",), 3 * 1024 + 1),
    "wrong padding": _set(("padding",), 1),
    "short nonce": _set(("nonce",), "00" * 8),
    "upper-case sha": _set(("sha256",), "AB" * 32),
    "missing key": _drop("nonce"),
    "extra key": _set(("health",), "none"),
    "fragments not a list": _set(("fragments",), {}),
    "too few fragments": lambda doc: doc["fragments"].pop(),
    "fragment not an object": _set(("fragments", 0), "n0"),
    "duplicate index": _set(("fragments", 1, "index"), 0),
    "index out of order": lambda doc: doc["fragments"].reverse(),
    "two fragments on one node": _set(("fragments", 1, "node"), "n0"),
    "bad node id": _set(("fragments", 0, "node"), "../etc"),
    "fragment size off": _set(("fragments", 0, "size"), 1),
    "CIDv0": _set(("fragments", 0, "cid"), "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"),
    "CID not a string": _set(("fragments", 0, "cid"), 7),
    "extra fragment key": _set(("fragments", 0, "health"), "x"),
    "not an object": lambda doc: doc.clear(),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_manifest_with_a_wrong_field_is_rejected(mutation: str) -> None:
    doc = _json()
    MUTATIONS[mutation](doc)
    with pytest.raises(InvalidManifest):
        Manifest.from_bytes(_encode(doc))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"null",
        b"[]",
        b"\xff\xfe",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"k":NaN}',
        _manifest().to_bytes().replace(b'"k":3', b'"k":3,"k":3'),
        _manifest().to_bytes().replace(b",", b", "),
        _manifest().to_bytes() + b"\n",
        b" " * 300_000,
    ],
    ids=["empty", "null", "array", "not utf-8", "deep nesting", "NaN", "duplicate key", "not canonical",
         "trailing newline", "oversized"],
)
def test_malformed_manifest_bytes_raise_invalid_manifest(data: bytes) -> None:
    with pytest.raises(InvalidManifest):
        Manifest.from_bytes(data)


def test_invalid_manifest_is_an_invalid_record() -> None:
    assert issubclass(InvalidManifest, InvalidRecord)


@FIXED
@given(st.binary(max_size=2048))
def test_random_bytes_never_crash_the_parser(data: bytes) -> None:
    with pytest.raises(InvalidManifest):
        Manifest.from_bytes(data)


@FIXED
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=20))
def test_random_json_never_crashes_the_parser(doc: Any) -> None:
    with pytest.raises(InvalidManifest):
        Manifest.from_bytes(_encode(doc))
