"""What a custodian asks the chain before it releases anything, whatever the caller claims.

- the record exists and is not erased: RecordRegistry.getRecord gives patient and scope of a
  record with stored state; a batched record is found from the BatchAnchored event of the batch
  its id names (`ehr_client.chain.batches`), which names its patient and the scopes the chain checked;
- the grantee may read that scope now (ConsentManager.canRead), and the grant's expiry is
  still ahead by the custodian's own clock too (a view at `latest` sees the last block's time,
  which lags on a chain that mines only on demand);
- the access request is on chain: the caller names a transaction, and its receipt must hold an
  AccessRequested log from this deployment's ConsentManager for this record and this reader that
  names the record's patient (the contract cannot name another; the custodian checks anyway), mined within the last `max_request_blocks` blocks and `max_request_age` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from hexbytes import HexBytes
from web3.exceptions import TransactionNotFound

from ehr_client.chain.batches import BatchIndex
from ehr_client.chain.client import ChainClient
from ehr_client.chain.types import KeyType, Role, Status
from ehr_client.custodian.errors import CustodianRefused
from ehr_client.errors import ChainUnavailable, RecordNotFound, TransactionReverted

KEY_CUSTODIAN_ROLE = Role.KEY_CUSTODIAN
UMBRAL_KEY_TYPE = KeyType.UMBRAL
X25519_KEY_TYPE = KeyType.X25519
T = TypeVar("T")


@dataclass(frozen=True)
class RecordFacts:
    record_id: bytes
    patient: str
    scope: int
    status: str


@dataclass(frozen=True)
class AccessProof:
    """The on-chain access request a release answers."""

    tx_hash: str
    block_number: int
    timestamp: int


class ChainChecks:
    """The custodian's view of the chain; every method asks the node afresh."""

    def __init__(
        self,
        chain: ChainClient,
        *,
        max_request_age: int = 300,
        max_request_blocks: int = 256,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.chain = chain
        self.batches = BatchIndex(chain)
        self.max_request_age = max_request_age
        self.max_request_blocks = max_request_blocks
        self.clock = clock

    def now(self) -> int:
        """The later of the custodian's clock and the chain's latest block time."""
        return max(int(self.clock()), self.chain.now())

    def record(self, record_id: bytes, *, patient: str | None) -> RecordFacts:
        """What the chain says about a record said to belong to `patient` (if named). A batched record
        is found from the batch its id names (one view call, one log query of 256 blocks), and with
        `patient` only if that batch holds `patient`'s records."""
        try:
            stored_patient, scope, status = self.chain.call(self.chain.records.functions.getRecord(record_id),
                                                            action="look up record")
        except RecordNotFound:
            located = self.batches.locate(record_id, patient=patient)
            if located is None:
                raise CustodianRefused("record-unknown",
                                       f"record 0x{record_id.hex()} is not anchored on this chain") from None
            event, _ = located
            return RecordFacts(record_id, str(event.args["patient"]), int(event.args["scopes"]), "active")
        return RecordFacts(record_id, str(stored_patient), int(scope), Status(int(status)).label)

    def live_record(self, record_id: bytes, *, patient: str | None) -> RecordFacts:
        facts = self.record(record_id, patient=patient)
        if facts.status == "tombstoned":
            raise CustodianRefused("record-erased", f"record 0x{record_id.hex()} was erased")
        return facts

    def grant_valid(self, facts: RecordFacts, grantee: str) -> None:
        consent = self.chain.consent.functions
        if not self.chain.call(consent.canRead(facts.patient, grantee, facts.scope), action="check read permission"):
            raise CustodianRefused(
                "no-grant",
                f"{grantee} holds no valid grant covering this record (never granted, revoked, other scope, "
                "expired or membership suspended)",
            )
        grant = self.chain.call(consent.getGrant(facts.patient, grantee), action="read grant")
        if int(grant[1]) <= self.now():
            raise CustodianRefused("grant-expired", f"the grant to {grantee} has expired")

    def _rpc(self, request: Callable[[], T]) -> T:
        try:
            return request()
        except (requests.ConnectionError, requests.Timeout):
            raise ChainUnavailable(f"the custodian cannot reach the chain node at {self.chain.rpc_url}") from None

    def head(self) -> int:
        """The latest block number."""
        return int(self._rpc(lambda: self.chain.w3.eth.block_number))

    def access_request(self, record_id: bytes, grantee: str, tx_hash: str, *, patient: str) -> AccessProof:
        w3 = self.chain.w3
        try:
            receipt: Any = self._rpc(lambda: w3.eth.get_transaction_receipt(HexBytes(tx_hash)))
        except TransactionNotFound:
            raise CustodianRefused("no-access-request", f"transaction {tx_hash} is not mined on this chain") from None
        if receipt["status"] != 1 or not self._has_access_log(receipt["logs"], record_id, grantee, patient):
            raise CustodianRefused(
                "no-access-request",
                f"transaction {tx_hash} holds no AccessRequested event of {grantee} for record 0x{record_id.hex()} "
                f"of patient {patient}; "
                "call requestAccess first",
            )
        block = int(receipt["blockNumber"])
        head = self._rpc(lambda: w3.eth.block_number)
        timestamp = int(self._rpc(lambda: w3.eth.get_block(block))["timestamp"])
        # "Recent" is measured on the chain's own clock: a custodian whose wall clock runs ahead of
        # the chain's block times (a dev chain whose time was set back) must not refuse every request.
        chain_now = int(self._rpc(lambda: w3.eth.get_block("latest"))["timestamp"])
        if head - block > self.max_request_blocks or chain_now - timestamp > self.max_request_age:
            raise CustodianRefused(
                "stale-access-request",
                f"the access request {tx_hash} is too old (more than {self.max_request_blocks} blocks or "
                f"{self.max_request_age} s); request access again",
            )
        return AccessProof(tx_hash, block, timestamp)

    def _has_access_log(self, logs: list[Any], record_id: bytes, grantee: str, patient: str) -> bool:
        consent = self.chain.consent
        event = consent.events.AccessRequested()
        topic = HexBytes(event.topic)
        for log in logs:
            topics = log.get("topics") or []
            if log.get("address") != consent.address or not topics or HexBytes(topics[0]) != topic:
                continue
            args = event.process_log(log)["args"]
            if (bytes(args["recordId"]) == record_id and str(args["reader"]) == grantee
                    and str(args["patient"]) == patient):
                return True
        return False

    def is_custodian(self, account: str) -> bool:
        return bool(self.chain.call(self.chain.consortium.functions.hasActiveRole(account, KEY_CUSTODIAN_ROLE),
                                    action="check custodian membership"))

    def is_active_member(self, account: str) -> bool:
        return bool(self.chain.call(self.chain.consortium.functions.isActiveMember(account), action="check membership"))

    def published_key(self, account: str, key_type: int) -> tuple[int, bytes] | None:
        try:
            version, key = self.chain.call(self.chain.keys.functions.currentKey(account, key_type),
                                           action="look up published key")
        except TransactionReverted:
            return None
        return int(version), bytes(key)

    def umbral_key_at(self, account: str, version: int) -> bytes | None:
        try:
            key = self.chain.call(self.chain.keys.functions.keyAt(account, UMBRAL_KEY_TYPE, version),
                                  action="look up Umbral key")
        except TransactionReverted:
            return None
        return bytes(key[0])

    def x25519_key(self, account: str) -> tuple[int, bytes] | None:
        return self.published_key(account, X25519_KEY_TYPE)

    def umbral_key(self, account: str) -> tuple[int, bytes] | None:
        return self.published_key(account, UMBRAL_KEY_TYPE)
