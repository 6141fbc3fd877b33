"""The portal's API attacked over HTTP by a caller with no account at all: what it can make the
portal pay for, store and crash on. Each test acts as the attacker and asserts what the portal
should have done; a failing test is a finding."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from eth_account import Account

from ehr_client.chain.eip712 import Domain, grant_typed_data, sign_typed_data
from ehr_client.storage import LocalStore
from ehr_client.storage.cid import cid_for_bytes
from tests.portal.conftest import Portal

OCTETS = {"Content-Type": "application/octet-stream"}
PLAINTEXT = b"Patient Jane Roe, DOB 1970-01-01: HIV-1 RNA detected, viral load 48,000 copies/mL"


def rpc(portal: Portal, method: str, params: list[Any]) -> Any:
    return portal.post("/api/rpc", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})


def balance(portal: Portal, address: str) -> int:
    return int(rpc(portal, "eth_getBalance", [address, "latest"]).json()["result"], 16)


def test_anyone_can_make_the_relayer_pay_for_consent_signed_by_throwaway_keys(
    portal: Portal, world: dict[str, str]
) -> None:
    """An attacker with no account, no registration and no gas mints keys, signs grants from them to
    a consortium member, and has the consortium's relayer pay for every one (new nonce each time).
    Nothing ties a relayed consent to a patient of this portal, and nothing limits how many."""
    config = portal.get("/api/config").json()
    relayer = config["relayer"]
    d = config["consent"]["domain"]
    domain = Domain(d["name"], d["chainId"], d["verifyingContract"], d["version"])
    before = balance(portal, relayer)
    answers = []
    for round_ in range(6):
        attacker = Account.create()  # a fresh "patient" each time: never registered, never funded
        head = rpc(portal, "eth_getBlockByNumber", ["latest", False]).json()["result"]
        now = int(head["timestamp"], 16)
        document = grant_typed_data(domain, patient=attacker.address, grantee=world["doctor"], scopes=2,
                                    may_amend=False, purpose="treatment", grant_ends_at=now + 86400 + round_,
                                    nonce=0, signature_valid_until=now + 3600)
        signature = "0x" + sign_typed_data(attacker.key, document).hex()
        answers.append(portal.post("/api/relay", json={"typedData": document, "signature": signature,
                                                       "keyShare": None}))
    spent = before - balance(portal, relayer)
    paid = [a for a in answers if a.status_code == 200 and a.json()["tx"]]
    gas = sum(a.json()["tx"]["gasUsed"] for a in paid)
    assert not paid, (f"the relayer paid for {len(paid)} of {len(answers)} grants signed by unregistered throwaway "
                      f"keys ({gas} gas, {spent} wei) for a caller with no account; a relayer should refuse "
                      "consent from non-patients and limit what one caller can spend")


def test_packages_endpoint_refuses_a_fake_header_nobody_signed(portal: Portal, home: Path) -> None:
    """/api/packages once checked only that the body starts with a bound package header: a 96-byte
    fake header followed by health data in the clear was stored and served back to anyone. Now only
    the patient the header names may store a package, with a signature of the wallet."""
    fake_header = struct.pack(">4sBQB", b"EHRP", 3, 1, 0) + struct.pack(">32s20sQ20s", b"\x11" * 32, b"\x22" * 20,
                                                                        2, b"\x33" * 20) + b"\x00"
    body = fake_header + PLAINTEXT
    stored = portal.post("/api/packages", content=body, headers=OCTETS)
    store = LocalStore(home / "store")
    kept = store.has(cid_for_bytes(body))
    served = portal.get(f"/api/blobs/{cid_for_bytes(body)}")
    assert stored.status_code in (400, 403) and not kept, (
        f"the portal stored (HTTP {stored.status_code}, in store: {kept}) a fake package whose 'envelope' is "
        f"plaintext, and serves it back (HTTP {served.status_code}: {served.content[-40:]!r}); it should at least "
        "check the envelope's structure (nonce, tag, length) and that a record names this CID")


def test_keyshares_endpoint_stores_arbitrary_extra_fields(portal: Portal, world: dict[str, str], home: Path) -> None:
    """/api/keyshares parses the JSON but keeps the body as sent: unknown fields ride along, so any
    caller stores up to 1 MiB of anything (here health data in the clear) per request."""
    share = (b'{"format": "ehr-keyshare/1", "patient": "' + world["patient"].encode() + b'", "grantee": "'
             + world["doctor"].encode() + b'", "entries": [], "note": "' + PLAINTEXT + b'"}')
    stored = portal.post("/api/keyshares", content=share, headers=OCTETS)
    kept = LocalStore(home / "store").has(cid_for_bytes(share))
    assert not kept, (f"the portal stored a 'key share' carrying plaintext in an unknown field "
                      f"(HTTP {stored.status_code}: {stored.text[:120]})")


def test_malformed_block_numbers_in_a_log_query_crash_the_handler(portal: Portal) -> None:
    """eth_getLogs with fromBlock "0xzz": the range check's int(...) raises ValueError, which no
    handler maps, so the portal answers a generic 500 instead of a typed 400."""
    answer = rpc(portal, "eth_getLogs", [{"fromBlock": "0xzz", "toBlock": "0x10"}])
    error = answer.json()["error"]
    assert answer.status_code == 400 and error["type"] != "InternalError", (answer.status_code, error)


def test_held_duplicate_keys_cannot_smuggle_a_refused_method(portal: Portal) -> None:
    """The checked object is re-serialised before forwarding, so the node sees what was checked."""
    before = int(rpc(portal, "eth_blockNumber", []).json()["result"], 16)
    smuggled = b'{"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "method": "anvil_mine", "params": []}'
    portal.post("/api/rpc", content=smuggled, headers={"Content-Type": "application/json"})
    smuggled = b'{"jsonrpc": "2.0", "id": 1, "method": "anvil_mine", "method": "eth_blockNumber", "params": ["0x5"]}'
    answer = portal.post("/api/rpc", content=smuggled, headers={"Content-Type": "application/json"})
    assert answer.status_code == 200
    assert int(rpc(portal, "eth_blockNumber", []).json()["result"], 16) == before


def test_held_bodiless_cross_site_posts_change_nothing_the_chain_does_not_allow(
    portal: Portal, world: dict[str, str]
) -> None:
    """/api/erase and /api/rotated take no body, so another site can send them (no preflight); they
    unpin only what the chain shows tombstoned or rotated, so a live record stays."""
    records = portal.get(f"/api/records/{world['patient']}").json()["records"]
    for record in records:
        for path in (f"/api/erase/{record['recordId']}", f"/api/rotated/{record['recordId']}"):
            answer = portal.post(path, headers={"Origin": "http://evil.example", "Content-Type": "text/plain"})
            assert answer.status_code == 403, (path, answer.text)


def test_eth_call_passes_any_gas_to_the_node_so_one_request_pins_a_core(portal: Portal) -> None:
    """eth_call is a "read", but it runs code the caller supplies (no `to`: init code) with the gas
    the caller names, and Anvil (the default `ehr node up`) caps neither. Here 10^9 gas (33 times
    the block gas limit) of JUMPDEST/JUMP loop: the node runs it to the end. Measured on Anvil
    directly: 3*10^7 gas 0.06 s, 10^9 0.72 s, 10^10 6.9 s (linear); 0xffffffffffff gas was still
    running after 40 s (about two days of a core by that rate); a batch holds 20. The portal should
    cap `gas` at the block gas limit (or refuse calls without `to`)."""
    loop = "0x5b600056"  # JUMPDEST PUSH1 0 JUMP
    answer = rpc(portal, "eth_call", [{"data": loop, "gas": hex(10**9)}, "latest"])
    doc = answer.json()
    forwarded = answer.status_code == 200 and "jsonrpc" in doc
    assert not forwarded, f"the portal forwarded a 10^9-gas call of caller code to the node, which answered {doc}"


def test_one_request_makes_the_relayer_pay_for_a_60_kb_purpose(portal: Portal, world: dict[str, str]) -> None:
    """The purpose is a free string in the signed document; the relay body may be 64 KiB. One
    request from a throwaway key makes the relayer pay for ~60 KB of calldata (and whatever the
    contract does with the string), many times a normal grant's gas."""
    config = portal.get("/api/config").json()
    d = config["consent"]["domain"]
    domain = Domain(d["name"], d["chainId"], d["verifyingContract"], d["version"])
    attacker = Account.create()
    now = int(rpc(portal, "eth_getBlockByNumber", ["latest", False]).json()["result"]["timestamp"], 16)
    document = grant_typed_data(domain, patient=attacker.address, grantee=world["doctor"], scopes=2, may_amend=False,
                                purpose="x" * 60_000, grant_ends_at=now + 86400, nonce=0,
                                signature_valid_until=now + 3600)
    signature = "0x" + sign_typed_data(attacker.key, document).hex()
    answer = portal.post("/api/relay", json={"typedData": document, "signature": signature, "keyShare": None})
    gas = answer.json()["tx"]["gasUsed"] if answer.status_code == 200 and answer.json().get("tx") else None
    assert answer.status_code == 400, f"relayed (HTTP {answer.status_code}), the relayer paid {gas} gas for one request"


def test_a_key_share_ahead_of_any_grant_is_not_stored(portal: Portal, world: dict[str, str], cli: Any,
                                                       home: Path, tmp_path: Path) -> None:
    """A key share is a bearer capability. The page once stored it before the grant (and a signed grant
    may never be relayed): the portal now stores a share, even one the patient signed, only for records
    whose category the chain lets the grantee read now. The hospital holds an amend grant for
    conditions only; a share of the patient's lab result to it is refused and nothing is stored."""
    import hashlib
    import json
    import os
    import time

    from eth_account.messages import encode_typed_data

    from ehr_client.crypto import WRAPPED_KEY_SIZE
    from ehr_client.keyshare import KeyShare, ShareEntry
    from ehr_client.portal.signed import typed_data
    from tests.cli.conftest import CAST, dev_key

    result = tmp_path / "result.json"
    result.write_text(json.dumps({
        "resourceType": "Observation", "status": "final", "code": {"text": f"sodium {os.urandom(4).hex()}"},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "laboratory"}]}],
        "valueQuantity": {"value": 140, "unit": "mmol/L"}}))
    record_id = bytes.fromhex(cli.json("record", "add", "patient", str(result), wallet="lab")["recordId"][2:])
    share = KeyShare(world["patient"], world["hospital"],
                     (ShareEntry(record_id, 1, 1, os.urandom(WRAPPED_KEY_SIZE)),)).to_bytes()
    config = portal.get("/api/config").json()
    expires = int(time.time()) + 300
    document = typed_data(chain_id=config["chainId"], registry=config["contracts"]["RecordRegistry"],
                          action="store-key-share", subject=hashlib.sha256(share).digest(), expires=expires)
    signature = Account.sign_message(encode_typed_data(full_message=document),
                                     private_key=dev_key(CAST.index("patient"))).signature.hex()
    headers = {**OCTETS, "X-EHR-Signature": "0x" + signature.removeprefix("0x"), "X-EHR-Expires": str(expires)}

    refused = portal.post("/api/keyshares", content=share, headers=headers)

    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["type"] == "AccessDenied" and "in force" in error["message"]
    assert not LocalStore(home / "store").has(cid_for_bytes(share))
