"""The record model the client works with: who acts, what the chain says about a record, and what
operations return. One record model: a record anchored alone and a record anchored in a batch are
both a `RecordInfo`; the batched one also carries the `BatchProof` the contracts ask for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from ehr_client.chain.client import TxResult
from ehr_client.chain.ids import batch_id_of
from ehr_client.chain.types import Status
from ehr_client.errors import InvalidRecord
from ehr_client.keys import Identity, umbral_public_key
from ehr_client.package import PackageHeader, RecordBinding
from ehr_client.storage import Cid

FHIR_MEDIA_TYPE = "application/fhir+json"


def hex_id(record_id: bytes) -> str:
    return "0x" + record_id.hex()


@dataclass(frozen=True)
class BatchProof:
    """What proves a batched record to the contracts (`IRecordRegistry.BatchedRecord`)."""

    author: str
    batch_key: bytes
    root: bytes
    patient: str
    scopes: int
    leaf_count: int
    index: int
    scope: int
    content_hash: bytes
    cid_hash: bytes
    proof: tuple[bytes, ...]
    manifest_cid: Cid

    @property
    def batch_id(self) -> bytes:
        return batch_id_of(self.author, self.batch_key)

    def as_arg(self) -> tuple[Any, ...]:
        """The tuple a contract call takes for `IRecordRegistry.BatchedRecord`."""
        return (self.author, self.batch_key, self.root, self.patient, self.scopes, self.leaf_count, self.index,
                self.scope, self.content_hash, self.cid_hash, list(self.proof))


@dataclass(frozen=True)
class RecordInfo:
    """What the chain says about one record version, anchored alone or in a batch (`batch`)."""

    record_id: bytes
    patient: str
    author: str
    scope: int
    status: str
    content_hash: bytes
    cid: Cid
    previous_id: bytes | None
    block_number: int
    timestamp: int
    tx_hash: str
    batch: BatchProof | None = None

    @property
    def batched(self) -> bool:
        return self.batch is not None

    def binding(self, version: int) -> RecordBinding:
        """The identity the record's ciphertext and keys must be sealed to, per the chain."""
        return RecordBinding.of(self.record_id, version, self.patient, self.scope, self.author)

    def with_status(self, status: Status) -> RecordInfo:
        label = "active" if status == Status.NONE else status.label
        return RecordInfo(self.record_id, self.patient, self.author, self.scope, label, self.content_hash, self.cid,
                          self.previous_id, self.block_number, self.timestamp, self.tx_hash, self.batch)


@dataclass(frozen=True)
class Skipped:
    """Something anchored by another member that could not be verified; left out and reported."""

    what: str
    reason: str
    author: str | None = None
    tx_hash: str | None = None


@dataclass(frozen=True)
class Listing:
    """A patient's records (oldest first) and what was skipped as unverifiable."""

    records: tuple[RecordInfo, ...]
    skipped: tuple[Skipped, ...] = ()


@dataclass(frozen=True)
class WriteResult:
    """A stored and anchored record. `tx` is None when a retry found the same write already anchored."""

    record_id: bytes
    cid: Cid
    content_hash: bytes
    tx: TxResult | None
    reused_pending: bool = False
    scope: int = 0
    salt: bytes | None = None
    """The salt the id was derived from (`record_id_of(author, salt)`); what proves authorship to
    other contracts, such as the claim registry."""


@dataclass(frozen=True)
class ReadResult:
    info: RecordInfo
    media_type: str
    data: bytes = field(repr=False)
    claim_secret: bytes = field(default=b"", repr=False)
    """Derived from the data key (`ehr_client.crypto.claim_secret`): what a reader proves claims with."""

    def resource(self) -> dict[str, Any]:
        """The FHIR resource as a dict (FHIR records only)."""
        if self.media_type != FHIR_MEDIA_TYPE:
            raise InvalidRecord(f"record is {self.media_type}, not FHIR JSON")
        resource: dict[str, Any] = json.loads(self.data)
        return resource


@dataclass(frozen=True)
class VerifyResult:
    record_id: bytes
    ok: bool
    problem: str | None = None


@dataclass(frozen=True)
class GrantResult:
    tx: TxResult | None
    key_share: Cid | None
    shared_records: int
    skipped: tuple[Skipped, ...] = ()


class KeyRelease(Protocol):
    """Where a reader without a wrap in the keyring gets a record's data key (audited release).

    Called after the access request was mined; `access` is that transaction, which custodians
    look up on chain.
    """

    def data_key(self, info: RecordInfo, header: PackageHeader, access: TxResult) -> bytes: ...
