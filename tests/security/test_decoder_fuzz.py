"""Fuzzing the client's decoders of untrusted bytes: only typed errors, and quickly.

Each decoder gets random input, random JSON, and near-valid documents with one part replaced or
the bytes mutated; it must either return a value (which then round-trips) or raise its one typed
error. Every example has a one-second deadline, so a hang or a pathological slowdown fails.

Deeply nested JSON is tested separately, in a child process: the interpreter's recursion limit
decides between a RecursionError and a crashed process, and Ape's dependency py_ecc raises that
limit to 100,000 in any process that imports it.

Elsewhere: the crypto envelope parser is fuzzed in tests/crypto/test_parser_fuzz.py, CID strings
and binary CIDs in tests/storage/test_cid.py (arbitrary text and bytes).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ehr_client.chain.deployment import Deployment
from ehr_client.chain.reverts import _error_table, decode_revert
from ehr_client.client import SignedConsent
from ehr_client.crypto import WRAPPED_KEY_SIZE
from ehr_client.errors import ConfigError, DecryptionError, InvalidRecord
from ehr_client.package import MAX_WRAPS, PackageHeader, Wrap, parse_header
from ehr_client.keyshare import KeyShare, ShareEntry
from ehr_client.storage.cid import cid_for_bytes, cid_from_bytes, cid_to_bytes, decode_cid, decode_cid_bytes

FUZZ = settings(derandomize=True, database=None, max_examples=250, deadline=timedelta(seconds=1),
                suppress_health_check=[HealthCheck.too_slow])

ADDRESS = "0x" + "ab" * 20
# Finite numbers and shallow nesting: non-finite numbers and deep nesting have their own tests below.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


def mutated(data: bytes) -> st.SearchStrategy[bytes]:
    """`data` with a byte flipped, a slice cut out, bytes inserted, or cut short."""
    n = len(data)
    return st.one_of(
        st.tuples(st.integers(0, n - 1), st.integers(1, 255)).map(
            lambda a: data[: a[0]] + bytes([data[a[0]] ^ a[1]]) + data[a[0] + 1 :]),
        st.tuples(st.integers(0, n - 1), st.integers(1, 64)).map(lambda a: data[: a[0]] + data[a[0] + a[1] :]),
        st.tuples(st.integers(0, n), st.binary(min_size=1, max_size=64)).map(
            lambda a: data[: a[0]] + a[1] + data[a[0] :]),
        st.integers(0, n - 1).map(lambda cut: data[:cut]),
    )


def replaced(doc: dict[str, Any], path_strategy: st.SearchStrategy[tuple[str, ...]]) -> st.SearchStrategy[Any]:
    """`doc` with the value at one key path replaced by arbitrary JSON (or the key removed)."""

    def apply(args: tuple[tuple[str, ...], Any, bool]) -> Any:
        path, value, remove = args
        copy = json.loads(json.dumps(doc))
        target = copy
        for key in path[:-1]:
            target = target[key] if isinstance(target, dict) else target[int(key)]
        if isinstance(target, list):
            target[int(path[-1])] = value
        elif remove:
            target.pop(path[-1], None)
        else:
            target[path[-1]] = value
        return copy

    return st.tuples(path_strategy, json_values, st.booleans()).map(apply)


def only(error: type[Exception], parse: Callable[[], Any]) -> Any:
    """The parse result, or None when it raised exactly the typed `error`; anything else fails."""
    try:
        return parse()
    except error:
        return None


# --- package header (the keyring in front of every stored record) ----------------------------------

wraps = st.builds(Wrap, st.binary(min_size=20, max_size=20), st.integers(0, 2**32 - 1),
                  st.binary(min_size=WRAPPED_KEY_SIZE, max_size=WRAPPED_KEY_SIZE))
headers = st.builds(PackageHeader, st.integers(0, 2**64 - 1),
                    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
                    st.lists(wraps, max_size=3).map(tuple))
VALID_HEADER = PackageHeader(1, "application/fhir+json",
                             (Wrap(b"\x01" * 20, 1, b"\x02" * WRAPPED_KEY_SIZE),)).to_bytes()


@FUZZ
@given(header=headers, body=st.binary(max_size=64))
def test_package_header_round_trips(header: PackageHeader, body: bytes) -> None:
    data = header.to_bytes() + body
    parsed, offset = parse_header(data)
    assert parsed == header and data[offset:] == body


@FUZZ
@given(data=st.binary(max_size=3000) | mutated(VALID_HEADER) | st.binary(max_size=600).map(lambda b: b"EHRP\x01" + b)
       | st.binary(max_size=600).map(lambda b: b"EHRP\x02" + b))
def test_package_header_parser_raises_only_decryption_error(data: bytes) -> None:
    result = only(DecryptionError, lambda: parse_header(data))
    if result is not None:
        header, offset = result
        assert 0 < offset <= len(data) and len(header.wraps) <= 255


def test_package_header_with_255_wraps_declared_but_absent_is_refused_at_once() -> None:
    forged = b"EHRP\x01" + bytes(8) + b"\x00" + b"\xff"
    assert only(DecryptionError, lambda: parse_header(forged)) is None
    assert MAX_WRAPS < 255  # the writer never produces more than 32; the parser bounds the loop at 255


# --- key shares (handed over with a grant, stored where anyone may read them) ----------------------

VALID_SHARE = KeyShare(ADDRESS, "0x" + "cd" * 20, (ShareEntry(b"\x11" * 32, 1, 1, b"\x22" * WRAPPED_KEY_SIZE),))
VALID_SHARE_DOC = json.loads(VALID_SHARE.to_bytes())
share_paths = st.sampled_from([("format",), ("patient",), ("grantee",), ("entries",), ("entries", "0"),
                               ("entries", "0", "record"), ("entries", "0", "wrapped"), ("entries", "0", "version"),
                               ("entries", "0", "keyVersion")])


@FUZZ
@given(data=st.binary(max_size=2000) | json_values.map(lambda v: json.dumps(v).encode())
       | mutated(VALID_SHARE.to_bytes()) | replaced(VALID_SHARE_DOC, share_paths).map(lambda d: json.dumps(d).encode()))
def test_key_share_parser_raises_only_invalid_record(data: bytes) -> None:
    share = only(InvalidRecord, lambda: KeyShare.from_bytes(data))
    if share is not None:
        assert KeyShare.from_bytes(share.to_bytes()) == share


# --- deployment files ----------------------------------------------------------------------------

VALID_DEPLOYMENT = Deployment(
    network="fuzz", chain_id=1, deploy_block=0, deployer=ADDRESS,
    contracts={n: ADDRESS for n in ("Consortium", "KeyRegistry", "RecordRegistry", "ConsentManager")},
    governors=[ADDRESS], threshold=1,
)
VALID_DEPLOYMENT_DOC = json.loads(VALID_DEPLOYMENT.to_json())
deployment_paths = st.sampled_from([(k,) for k in VALID_DEPLOYMENT_DOC] + [("contracts", "ConsentManager")])


@FUZZ
@given(text=st.text(max_size=2000) | json_values.map(json.dumps)
       | mutated(VALID_DEPLOYMENT.to_json().encode()).map(lambda b: b.decode("utf-8", "replace"))
       | replaced(VALID_DEPLOYMENT_DOC, deployment_paths).map(json.dumps))
def test_deployment_parser_raises_only_config_error(text: str) -> None:
    deployment = only(ConfigError, lambda: Deployment.from_json(text))
    if deployment is not None:
        assert Deployment.from_json(deployment.to_json()) == deployment


# --- revert data returned by any node ---------------------------------------------------------------

SELECTORS = sorted(_error_table())


@FUZZ
@given(data=st.binary(max_size=600)
       | st.tuples(st.sampled_from(SELECTORS), st.binary(max_size=300)).map(lambda t: t[0] + t[1]))
def test_revert_decoder_never_raises(data: bytes) -> None:
    decoded = decode_revert(data)
    assert decoded is None or (isinstance(decoded[0], str) and isinstance(decoded[1], dict))


# --- signed consent documents (from a patient, through anyone, to a relayer) ------------------------

VALID_CONSENT = {"typedData": {"primaryType": "Grant", "domain": {}, "types": {}, "message": {"patient": ADDRESS}},
                 "signature": "0x" + "11" * 65, "keyShare": None}
consent_paths = st.sampled_from([("typedData",), ("signature",), ("keyShare",), ("typedData", "message")])


@FUZZ
@given(text=st.text(max_size=2000) | json_values.map(json.dumps)
       | replaced(VALID_CONSENT, consent_paths).map(json.dumps))
def test_signed_consent_parser_raises_only_invalid_record(text: str) -> None:
    consent = only(InvalidRecord, lambda: SignedConsent.from_json(text))
    if consent is not None:
        assert SignedConsent.from_json(consent.to_json()) == consent


@pytest.mark.parametrize("typed_data", [[1, 2], "grant", {"primaryType": "Grant"}, {"message": []}])
def test_signed_consent_that_is_not_a_consent_is_refused_when_parsed(typed_data: Any) -> None:
    with pytest.raises(InvalidRecord):
        SignedConsent.from_json(json.dumps({"typedData": typed_data, "signature": "0x" + "11" * 65}))


# --- CIDs (read from chain events and key shares) -------------------------------------------------

RAW_CID = cid_to_bytes(cid_for_bytes(b"fuzz"))


@FUZZ
@given(data=st.binary(max_size=100) | mutated(RAW_CID))
def test_binary_cid_decoder_raises_only_invalid_record(data: bytes) -> None:
    info = only(InvalidRecord, lambda: decode_cid_bytes(data))
    if info is not None:
        assert cid_to_bytes(cid_from_bytes(data)) == data


@FUZZ
@given(text=st.text(max_size=200) | st.text("abcdefghijklmnopqrstuvwxyz234567", max_size=80).map(lambda s: "b" + s)
       | mutated(cid_for_bytes(b"fuzz").encode()).map(lambda b: b.decode("ascii", "replace")))
def test_cid_string_decoder_raises_only_invalid_record(text: str) -> None:
    info = only(InvalidRecord, lambda: decode_cid(text))
    if info is not None:
        assert cid_from_bytes(cid_to_bytes(text)) == text


# --- inputs the fuzz strategies above leave out -------------------------------------------------------


@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "NaN"])
def test_deployment_with_a_non_finite_number_is_a_config_error(value: str) -> None:
    text = VALID_DEPLOYMENT.to_json().replace('"chainId": 1', f'"chainId": {value}')
    with pytest.raises(ConfigError):
        Deployment.from_json(text)


def test_key_share_with_a_non_finite_version_is_invalid_record() -> None:
    doc = json.loads(VALID_SHARE.to_bytes())
    text = json.dumps(doc).replace('"version": 1', '"version": Infinity')
    with pytest.raises(InvalidRecord):
        KeyShare.from_bytes(text.encode())


NESTING_PROBE = """
import sys
from ehr_client.chain.deployment import Deployment
from ehr_client.client import SignedConsent
from ehr_client.keyshare import KeyShare
parse = {"deployment": Deployment.from_json, "consent": SignedConsent.from_json,
         "share": lambda t: KeyShare.from_bytes(t.encode())}[sys.argv[1]]
for limit in (1000, 100_000):  # Python's default, then what py_ecc sets in any process importing it
    sys.setrecursionlimit(limit)
    try:
        parse("[" * 300_000)
        print(limit, "parsed", flush=True)
    except Exception as exc:
        print(limit, type(exc).__name__, flush=True)
"""


@pytest.mark.parametrize("parser", [
    "share",
    "deployment",
    "consent",
])
def test_deeply_nested_json_is_a_typed_error_and_never_kills_the_process(parser: str) -> None:
    expected = {"share": "InvalidRecord", "deployment": "ConfigError", "consent": "InvalidRecord"}[parser]
    result = subprocess.run([sys.executable, "-c", NESTING_PROBE, parser], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, f"the process died (exit {result.returncode}) after: {result.stdout!r}"
    assert result.stdout.split() == ["1000", expected, "100000", expected]
