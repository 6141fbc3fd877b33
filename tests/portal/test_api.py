"""The portal's API refuses what it must, with typed JSON errors, and changes nothing when it does:
JSON-RPC methods outside the read allowlist, oversize blobs and bodies, uploads that are not key
shares, consent whose signature is not the patient's. And every response carries the CSP."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import keccak

from ehr_client.chain.eip712 import Domain, grant_typed_data, sign_typed_data
from ehr_client.portal.app import CONTENT_SECURITY_POLICY
from ehr_client.storage import LocalStore
from ehr_client.storage.cid import cid_for_bytes
from tests.cli.conftest import CAST, dev_key
from tests.portal.conftest import BROWSER_PATIENT_INDEX, Portal
from tests.portal.test_patient_walk import GLUCOSE
from tests.portal.wallet import TestWallet

LAB_SCOPE = 2
OCTETS = {"Content-Type": "application/octet-stream"}


def rpc(portal: Portal, method: str, params: list[Any] | None = None) -> Any:
    return portal.post("/api/rpc", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})


def error_of(response: Any) -> dict[str, str]:
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, str] = response.json()["error"]
    assert error["message"]
    return error


def block_number(portal: Portal) -> int:
    return int(rpc(portal, "eth_blockNumber").json()["result"], 16)


def test_rpc_passes_reads(portal: Portal) -> None:
    answer = rpc(portal, "eth_chainId")
    assert answer.status_code == 200 and int(answer.json()["result"], 16) == portal.get("/api/config").json()["chainId"]


@pytest.mark.parametrize("method", ["eth_sendTransaction", "anvil_mine", "anvil_setBalance", "personal_sign",
                                    "debug_traceTransaction", "eth_sign", "admin_peers", "evm_snapshot"])
def test_rpc_refuses_methods_outside_the_allowlist(portal: Portal, world: dict[str, str], method: str) -> None:
    before = block_number(portal)
    balance = rpc(portal, "eth_getBalance", [world["stranger"], "latest"]).json()["result"]
    params = [world["stranger"], "0x1000"] if method == "anvil_setBalance" else []
    refused = rpc(portal, method, params)
    assert refused.status_code == 403 and error_of(refused)["type"] == "MethodRefused"
    assert block_number(portal) == before
    assert rpc(portal, "eth_getBalance", [world["stranger"], "latest"]).json()["result"] == balance


def test_rpc_batch_with_one_refused_method_is_refused_whole(portal: Portal) -> None:
    before = block_number(portal)
    batch = [{"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []},
             {"jsonrpc": "2.0", "id": 2, "method": "anvil_mine", "params": ["0x5"]}]
    refused = portal.post("/api/rpc", json=batch)
    assert refused.status_code == 403 and error_of(refused)["type"] == "MethodRefused"
    assert block_number(portal) == before


def test_rpc_refuses_unbounded_log_queries_and_bad_bodies(portal: Portal) -> None:
    unbounded = rpc(portal, "eth_getLogs", [{"fromBlock": "0x0", "toBlock": "latest"}])
    assert unbounded.status_code == 413 and error_of(unbounded)["type"] == "RequestTooLarge"
    not_json = portal.post("/api/rpc", content=b"{not json", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and error_of(not_json)["type"] == "InvalidRecord"
    huge = portal.post("/api/rpc", content=b" " * (300 * 1024), headers={"Content-Type": "application/json"})
    assert huge.status_code == 413 and error_of(huge)["type"] == "RequestTooLarge"


def test_oversize_blob_is_refused(portal: Portal, home: Path) -> None:
    store = LocalStore(home / "store")
    cid = store.put(os.urandom(32 * 1024 * 1024 + 1))
    try:
        refused = portal.get(f"/api/blobs/{cid}")
        assert refused.status_code == 413 and error_of(refused)["type"] == "RequestTooLarge"
        assert "ehr record get" in error_of(refused)["message"]
    finally:
        store.remove(cid)


def test_blob_requests_for_bad_or_unknown_cids_are_typed(portal: Portal) -> None:
    bad = portal.get("/api/blobs/not-a-cid")
    assert bad.status_code == 400 and error_of(bad)["type"] == "InvalidRecord"
    unknown = portal.get(f"/api/blobs/{cid_for_bytes(b'never stored')}")
    assert unknown.status_code == 404 and error_of(unknown)["type"] == "BlobNotFound"


def test_uploads_that_are_not_key_shares_are_not_stored(portal: Portal, home: Path) -> None:
    store = LocalStore(home / "store")
    plaintext = b'{"resourceType": "Observation", "status": "final"}'
    refused = portal.post("/api/keyshares", content=plaintext, headers=OCTETS)
    assert refused.status_code == 400 and error_of(refused)["type"] == "InvalidRecord"
    assert not store.has(cid_for_bytes(plaintext))
    as_package = portal.post("/api/packages", content=plaintext, headers=OCTETS)
    assert as_package.status_code == 400 and error_of(as_package)["type"] == "InvalidRecord"
    unbound = b"EHRP\x01" + b"\x00" * 64  # a package header without a record binding (format 1)
    assert portal.post("/api/packages", content=unbound, headers=OCTETS).status_code == 400
    assert not store.has(cid_for_bytes(plaintext)) and not store.has(cid_for_bytes(unbound))
    oversize = b"x" * (1024 * 1024 + 1)
    too_big = portal.post("/api/keyshares", content=oversize, headers=OCTETS)
    assert too_big.status_code == 413 and error_of(too_big)["type"] == "RequestTooLarge"
    assert not store.has(cid_for_bytes(oversize))


def grant_document(portal: Portal, patient: str, grantee: str, *, nonce: int) -> dict[str, Any]:
    config = portal.get("/api/config").json()
    d = config["consent"]["domain"]
    domain = Domain(d["name"], d["chainId"], d["verifyingContract"], d["version"])
    head = rpc(portal, "eth_getBlockByNumber", ["latest", False]).json()["result"]
    now = int(head["timestamp"], 16)
    return grant_typed_data(domain, patient=patient, grantee=grantee, scopes=LAB_SCOPE, may_amend=False,
                            purpose="treatment", grant_ends_at=now + 86400, nonce=nonce,
                            signature_valid_until=now + 3600)


def _grant_of(portal: Portal, patient: str, grantee: str) -> list[dict[str, Any]]:
    return [g for g in portal.get(f"/api/grants/{patient}").json()["grants"] if g["grantee"] == grantee]


def test_relay_refuses_a_signature_that_is_not_the_patients(portal: Portal, world: dict[str, str]) -> None:
    patient = TestWallet(dev_key(BROWSER_PATIENT_INDEX), "http://unused").address
    grantee = world["stranger"]
    document = grant_document(portal, patient, grantee, nonce=0)
    forged = sign_typed_data(dev_key(6), document)  # the stranger signs a grant to itself
    refused = portal.post("/api/relay", json={"typedData": document, "signature": "0x" + forged.hex(), "keyShare": None})
    assert refused.status_code == 403 and error_of(refused)["type"] == "ConsentRefused"
    assert _grant_of(portal, patient, grantee) == []

    genuine = sign_typed_data(dev_key(BROWSER_PATIENT_INDEX), document)
    altered = {**document, "message": {**document["message"], "mayAmend": True}}  # terms changed after signing
    refused = portal.post("/api/relay", json={"typedData": altered, "signature": "0x" + genuine.hex(), "keyShare": None})
    assert refused.status_code == 403 and error_of(refused)["type"] == "ConsentRefused"
    assert _grant_of(portal, patient, grantee) == []

    malformed = portal.post("/api/relay", json={"typedData": document, "signature": "0x1234", "keyShare": None})
    assert malformed.status_code == 400 and error_of(malformed)["type"] == "InvalidRecord"
    not_consent = portal.post("/api/relay", json={"typedData": {"primaryType": "Mail"}, "signature": "0x" + genuine.hex()})
    assert not_consent.status_code == 400 and error_of(not_consent)["type"] == "InvalidRecord"
    assert _grant_of(portal, patient, grantee) == []


def test_relay_refuses_a_genuine_grant_its_grantee_could_not_act_on(portal: Portal, world: dict[str, str]) -> None:
    """The chain would store it (membership is asked when the grantee acts); the relayer does not pay for it."""
    patient = TestWallet(dev_key(BROWSER_PATIENT_INDEX), "http://unused").address
    assert portal.get(f"/api/accounts/{world['stranger']}").json()["member"] is None
    assert portal.get(f"/api/accounts/{world['doctor']}").json()["member"] == {
        "role": "provider", "suspended": False, "mayAmend": True}
    document = grant_document(portal, patient, world["stranger"], nonce=0)
    genuine = sign_typed_data(dev_key(BROWSER_PATIENT_INDEX), document)
    refused = portal.post("/api/relay", json={"typedData": document, "signature": "0x" + genuine.hex(), "keyShare": None})
    assert refused.status_code == 400 and error_of(refused)["type"] == "InvalidGrantee"
    assert "not a consortium member" in error_of(refused)["message"]
    assert _grant_of(portal, patient, world["stranger"]) == []


def test_every_response_carries_the_content_security_policy(portal: Portal) -> None:
    for path in ("/", "/app.js", "/api/config", "/api/blobs/not-a-cid", "/api/nothing-here"):
        response = portal.get(path)
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert response.headers["x-content-type-options"] == "nosniff"
    directives = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["default-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
    assert directives["script-src"] == "'self' 'wasm-unsafe-eval'"  # no 'unsafe-inline', no other origin
    assert all("http" not in value and "*" not in value for value in directives.values())
    page = portal.get("/").text
    assert "<script" in page and all('src="' in tag for tag in page.split("<script")[1:])
    assert "style=" not in page and "<style" not in page
    assert portal.get("/api/nothing-here").json()["error"]["type"] == "NotFound"


def test_other_sites_cannot_use_the_api(portal: Portal, world: dict[str, str]) -> None:
    """A page elsewhere can send only "simple" cross-origin POSTs (text/plain, forms): refused unread.
    A DNS-rebound name (evil.example resolving to 127.0.0.1) is refused whatever the request."""
    before = block_number(portal)
    call = '{"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}'
    simple = portal.post("/api/rpc", content=call, headers={"Content-Type": "text/plain"})
    assert simple.status_code == 415 and error_of(simple)["type"] == "UnsupportedContentType"
    share = b'{"format": "ehr-keyshare/1"}'
    form = portal.post("/api/keyshares", content=share, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415
    for path in ("/", "/api/config", f"/api/records/{world['patient']}"):
        rebound = portal.get(path, headers={"Host": "evil.example"})
        assert rebound.status_code == 421 and error_of(rebound)["type"] == "UntrustedHost"
    assert portal.get("/api/config", headers={"Host": "localhost:1234"}).status_code == 200
    assert block_number(portal) == before


def test_relaying_the_same_consent_twice_grants_once(portal: Portal, world: dict[str, str]) -> None:
    patient, grantee = world["patient"], world["doctor"]
    nonce = int(rpc(portal, "eth_call", [{"to": portal.get("/api/config").json()["contracts"]["ConsentManager"],
                                           "data": _nonces_call(patient, grantee)}, "latest"]).json()["result"], 16)
    document = grant_document(portal, patient, grantee, nonce=nonce)
    signature = "0x" + sign_typed_data(dev_key(CAST.index("patient")), document).hex()
    first = portal.post("/api/relay", json={"typedData": document, "signature": signature, "keyShare": None})
    assert first.status_code == 200, first.text
    assert first.json()["alreadyRelayed"] is False and first.json()["tx"]["gasUsed"] > 0
    again = portal.post("/api/relay", json={"typedData": document, "signature": signature, "keyShare": None})
    assert again.status_code == 200 and again.json()["alreadyRelayed"] is True and again.json()["tx"] is None
    granted = _grant_of(portal, patient, grantee)
    assert len(granted) == 1 and granted[0]["nonce"] == nonce + 1


def _nonces_call(patient: str, grantee: str) -> str:
    return "0x" + (keccak(text="nonces(address,address)")[:4] + encode(["address", "address"], [patient, grantee])).hex()


def test_ehr_portal_without_a_built_page_says_how_to_build_it(cli: Any, world: dict[str, str], tmp_path: Path) -> None:
    empty = tmp_path / "no-page"
    empty.mkdir()
    result = cli("portal", "--port", "0", env={"EHR_PORTAL_DIR": str(empty)}, expect=1)
    assert result.stderr.startswith("error: ") and "make portal" in result.stderr


def test_batched_proof_requests_are_typed(portal: Portal, cli: Any, world: dict[str, str], tmp_path: Path) -> None:
    observation = tmp_path / "glucose.json"
    observation.write_text(json.dumps({**GLUCOSE, "id": "single-not-batched"}))
    single = cli.json("record", "add", world["patient"], str(observation), wallet="lab")["recordId"]
    answers = {what: portal.get(f"/api/batched/{what}") for what in (single, "0x" + "ab" * 32, "0x12", "../x")}
    assert answers[single].status_code == 400 and "anchored on its own" in answers[single].json()["error"]["message"]
    assert answers["0x" + "ab" * 32].json()["error"]["type"] == "RecordNotFound"
    assert answers["0x12"].json()["error"]["type"] == "InvalidRecord"
    assert answers["../x"].status_code in (400, 404)
