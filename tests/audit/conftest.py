"""Audit fixtures: the client suite from tests/client (deployed with web3 on Ape's Anvil) and a
`script` that drives the contracts directly, fast, to build exact histories."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from web3.contract.contract import ContractFunction

from ehr_client.audit import AuditIndex
from ehr_client.chain.ids import record_id_of
from ehr_client.chain.client import ChainClient, TxResult
from ehr_client.client import Identity
from ehr_client.crypto import generate_x25519_keypair, x25519_public_key
from tests.client.conftest import (  # noqa: F401  (fixtures re-exported for this directory)
    client_for,
    condition,
    ids,
    observation,
    people,
    rpc_url,
    store,
    suite,
)
from tests.constants import ACCESS_READ, ACTION, DAY, LAB_SCOPE, PURPOSE

ROLE_NAMES = ("gov_a", "gov_b", "gov_c", "hospital", "doctor", "lab", "insurer", "custodian", "patient", "stranger",
              "other_patient")


class Script:
    """Transactions by name ("patient", "doctor", ...) straight to the contracts, plus time travel."""

    def __init__(self, chain: ChainClient, ids: dict[str, Identity]) -> None:
        self.chain = chain
        self.ids = ids
        self._records = iter(range(1, 1_000_000))

    def address(self, who: str) -> str:
        return self.ids[who].address

    def tx(self, who: str, fn: ContractFunction) -> TxResult:
        return self.chain.transact(self.ids[who].account, fn, action="script")

    def block(self) -> int:
        return int(self.chain.w3.eth.block_number)

    def register(self, who: str = "patient") -> TxResult:
        return self.tx(who, self.chain.records.functions.registerPatient())

    def add_record(self, *, author: str = "patient", patient: str = "patient", scope: int = LAB_SCOPE) -> bytes:
        n = next(self._records)
        salt = n.to_bytes(32, "big")
        content_hash = (n + 1_000_000).to_bytes(32, "big")
        cid = b"\x01\x55\x12\x20" + content_hash
        self.tx(author, self.chain.records.functions.addRecord(salt, self.address(patient), content_hash, scope, cid))
        return record_id_of(self.address(author), salt)

    def amend(self, previous: bytes, *, author: str) -> bytes:
        n = next(self._records)
        salt = n.to_bytes(32, "big")
        content_hash = (n + 1_000_000).to_bytes(32, "big")
        self.tx(author, self.chain.records.functions.amendRecord(previous, salt, content_hash,
                                                                  b"\x01\x55\x12\x20" + content_hash))
        return record_id_of(self.address(author), salt)

    def grant(self, grantee: str, *, patient: str = "patient", scopes: int = LAB_SCOPE, access: int = ACCESS_READ,
              ttl: int = 30 * DAY) -> TxResult:
        expires = self.chain.now() + ttl
        return self.tx(patient, self.chain.consent.functions.grant(self.address(grantee), scopes, access, expires, PURPOSE))

    def revoke(self, grantee: str, *, patient: str = "patient") -> TxResult:
        return self.tx(patient, self.chain.consent.functions.revoke(self.address(grantee)))

    def read(self, who: str, record_id: bytes) -> TxResult:
        return self.tx(who, self.chain.consent.functions.requestAccess(record_id))

    def open_break_glass(self, who: str, *, patient: str = "patient", reason: int = 1) -> TxResult:
        return self.tx(who, self.chain.consent.functions.openBreakGlass(self.address(patient), reason))

    def confirm_break_glass(self, who: str, requester: str, *, patient: str = "patient") -> TxResult:
        return self.tx(who, self.chain.consent.functions.confirmBreakGlass(self.address(patient),
                                                                           self.address(requester)))

    def tombstone(self, record_id: bytes, *, who: str = "patient") -> TxResult:
        return self.tx(who, self.chain.records.functions.tombstone(record_id))

    def publish_key(self, who: str) -> TxResult:
        key = x25519_public_key(generate_x25519_keypair().private_key)
        return self.tx(who, self.chain.keys.functions.publishKey(1, key))

    def suspend(self, member: str, *, governor: str = "gov_a") -> TxResult:
        return self.tx(governor, self.chain.consortium.functions.suspend(self.address(member)))

    def reinstate(self, member: str) -> TxResult:
        consortium = self.chain.consortium.functions
        result = self.tx("gov_a", consortium.propose(ACTION["reinstate"], self.address(member), 0, DAY))
        proposal_id = self.chain.events_in(result, "Consortium", "ProposalCreated")[0]["proposalId"]
        self.tx("gov_b", consortium.approve(proposal_id))
        return self.tx("gov_b", consortium.execute(proposal_id))

    def failed(self, who: str, fn: ContractFunction) -> str:
        """Send `fn` with a fixed gas limit, skipping the node's revert prediction, as a raw client
        (or an attacker) can; returns the hash of the mined, reverted transaction."""
        account = self.ids[who].account
        w3 = self.chain.w3
        tx = fn.build_transaction({"from": account.address, "gas": 300_000, "chainId": self.chain.chain_id,
                                   "nonce": w3.eth.get_transaction_count(account.address, "pending")})
        tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)  # type: ignore[arg-type]
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10, poll_latency=0.02)
        assert receipt["status"] == 0, "the scripted failure did not revert"
        return tx_hash.to_0x_hex()

    def failed_read(self, who: str, record_id: bytes) -> str:
        return self.failed(who, self.chain.consent.functions.requestAccess(record_id))

    def set_next_timestamp(self, timestamp: int) -> None:
        self.chain.w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])  # type: ignore[arg-type]

    def increase_time(self, seconds: int) -> None:
        self.chain.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
        self.chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


@pytest.fixture
def script(suite: ChainClient, ids: dict[str, Identity]) -> Script:
    return Script(suite, ids)


@pytest.fixture
def open_index(suite: ChainClient, tmp_path: Path) -> Iterator[Callable[..., AuditIndex]]:
    """Open (and later close) audit indexes of the suite under this test's directory."""
    opened: list[AuditIndex] = []

    def _open(name: str = "audit", **options: Any) -> AuditIndex:
        index = AuditIndex.open(suite, tmp_path / name, **options)
        opened.append(index)
        return index

    yield _open
    for index in opened:
        index.close()


class WebhookServer:
    """A tiny HTTP server on 127.0.0.1 that records the JSON bodies it accepts."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        owner = self
        self.accepted: list[Any] = []
        self.failures_left = 0
        self.failure_status = 503
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                owner.requests += 1
                if owner.failures_left > 0:
                    owner.failures_left -= 1
                    self.send_response(owner.failure_status)
                else:
                    owner.accepted.append(json.loads(body))
                    self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def fail_next(self, count: int, *, status: int = 503) -> None:
        self.failures_left, self.failure_status = count, status

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def webhook_server() -> Iterator[WebhookServer]:
    server = WebhookServer()
    yield server
    server.close()
