"""Malformed input to every API endpoint must come back as a typed 4xx, never the generic 500
(which also means an unplanned code path ran). A table of attacker inputs; the failures listed."""

from __future__ import annotations

from typing import Any

from tests.portal.conftest import Portal

JSON = {"Content-Type": "application/json"}
OCTETS = {"Content-Type": "application/octet-stream"}

CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("rpc getLogs bad hex", "/api/rpc", {"json": {"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs",
                                                  "params": [{"fromBlock": "0x", "toBlock": "0x1"}]}}),
    ("rpc getLogs negative", "/api/rpc", {"json": {"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs",
                                                   "params": [{"fromBlock": "0x-5", "toBlock": "0x1"}]}}),
    ("rpc params dict", "/api/rpc", {"json": {"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": {}}}),
    ("rpc empty batch", "/api/rpc", {"json": []}),
    ("relay typedData number", "/api/relay", {"json": {"typedData": 5, "signature": "0x00"}}),
    ("relay domain list", "/api/relay", {"json": {"typedData": {"domain": [], "message": {}, "primaryType": "Grant"},
                                                  "signature": "0x" + "00" * 65}}),
    ("relay message list", "/api/relay", {"json": {"typedData": {"domain": {}, "message": [], "primaryType": "Grant"},
                                                   "signature": "0x" + "00" * 65}}),
    ("relay nonce string", "/api/relay", {"json": {"typedData": {"primaryType": "Revoke", "domain": {"name": "x"},
                                                                 "message": {"nonce": "zz"}},
                                                   "signature": "0x" + "00" * 65}}),
    ("relay signature not hex", "/api/relay", {"json": {"typedData": {}, "signature": "0xzz"}}),
    ("relay keyShare garbage", "/api/relay", {"json": {"typedData": {}, "signature": "0x" + "00" * 65,
                                                       "keyShare": "not a cid"}}),
    ("keyshare entries dict", "/api/keyshares", {"content": b'{"format": "ehr-keyshare/1", "entries": {}}',
                                                 "headers": OCTETS}),
    ("package header only", "/api/packages", {"content": b"EHRP\x03" + b"\x00" * 8, "headers": OCTETS}),
    ("package non-ascii media", "/api/packages", {"content": b"EHRP\x03" + b"\x00" * 7 + b"\x01\x01\xff" + b"\x00" * 100,
                                                  "headers": OCTETS}),
]
GETS = ["/api/blobs/%00", "/api/blobs/" + "b" * 5000, "/api/blobs/bafy", "/api/accounts/0x" + "g" * 40,
        "/api/records/0x0000000000000000000000000000000000000000", "/api/timeline/not-an-address/fhir",
        "/api/grants/0x" + "0" * 40]


def test_no_input_reaches_the_generic_500(portal: Portal) -> None:
    crashed = []
    for name, path, kwargs in CASES:
        answer = portal.post(path, **kwargs)
        if answer.status_code >= 500 and answer.status_code != 503:
            crashed.append(f"{name}: HTTP {answer.status_code} {answer.text[:100]}")
    for path in GETS:
        answer = portal.get(path)
        if answer.status_code >= 500 and answer.status_code != 503:
            crashed.append(f"GET {path[:60]}: HTTP {answer.status_code} {answer.text[:100]}")
    for path in ("/api/erase/0x" + "00" * 32, "/api/rotated/0x" + "00" * 32):
        answer = portal.post(path)
        if answer.status_code >= 500:
            crashed.append(f"POST {path[:40]}: HTTP {answer.status_code} {answer.text[:100]}")
    assert not crashed, "\n".join(crashed)
