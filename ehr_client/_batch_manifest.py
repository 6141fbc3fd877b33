"""The manifest of a batch: the list of records anchored under one Merkle root.

    {"format": "ehr-batch-manifest/1", "author": "0x…",
     "leaves": [{"recordId": "0x…", "patient": "0x…", "contentHash": "0x…", "scope": 2, "cid": "b…"}, …]}

It is stored in the BlobStore; its sha256 and CID are anchored with the root in the same
transaction. Leaf i of the tree is `record_leaf(recordId, patient, contentHash, scope)` of entry i,
so a reader holding the manifest can rebuild the tree and every proof. It holds only what the
chain already shows for single records (ids, pseudonymous addresses, hashes, scopes, pointers).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from eth_utils import is_address, to_checksum_address

from ehr_client.chain.merkle import MerkleTree, record_leaf
from ehr_client.errors import IntegrityError, InvalidRecord
from ehr_client.storage import Cid, parse_cid

MANIFEST_FORMAT = "ehr-batch-manifest/1"
MAX_LEAVES = 1 << 16


@dataclass(frozen=True)
class BatchLeaf:
    """One record of a batch, as the manifest lists it."""

    record_id: bytes
    patient: str
    content_hash: bytes
    scope: int
    cid: Cid

    @property
    def leaf(self) -> bytes:
        return record_leaf(self.record_id, self.patient, self.content_hash, self.scope)

    def to_json(self) -> dict[str, Any]:
        return {"recordId": "0x" + self.record_id.hex(), "patient": self.patient,
                "contentHash": "0x" + self.content_hash.hex(), "scope": self.scope, "cid": str(self.cid)}


@dataclass(frozen=True)
class BatchManifest:
    author: str
    leaves: tuple[BatchLeaf, ...]

    def to_bytes(self) -> bytes:
        return json.dumps(
            {"format": MANIFEST_FORMAT, "author": self.author, "leaves": [leaf.to_json() for leaf in self.leaves]},
            separators=(",", ":"), sort_keys=True,
        ).encode()

    @cached_property
    def tree(self) -> MerkleTree:
        return MerkleTree([leaf.leaf for leaf in self.leaves])

    @property
    def root(self) -> bytes:
        return self.tree.root

    def sha256(self) -> bytes:
        return hashlib.sha256(self.to_bytes()).digest()

    @classmethod
    def from_bytes(cls, data: bytes, *, root: bytes) -> BatchManifest:
        """Parse an untrusted manifest; anything malformed raises IntegrityError naming the batch."""
        try:
            doc = json.loads(data)
            raw = doc["leaves"]
            if doc.get("format") != MANIFEST_FORMAT or not is_address(doc["author"]) or not isinstance(raw, list):
                raise ValueError("not a batch manifest")
            if not 0 < len(raw) <= MAX_LEAVES:
                raise ValueError("bad leaf count")
            leaves = tuple(_parse_leaf(item) for item in raw)
            return cls(to_checksum_address(doc["author"]), leaves)
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
            raise IntegrityError(
                f"the manifest of batch 0x{root.hex()} is not a valid batch manifest; its records cannot be "
                "trusted: ask the batch's author to check what they stored"
            ) from None


def _parse_leaf(item: Any) -> BatchLeaf:
    record_id = bytes.fromhex(str(item["recordId"]).removeprefix("0x"))
    content_hash = bytes.fromhex(str(item["contentHash"]).removeprefix("0x"))
    scope = item["scope"]
    if len(record_id) != 32 or len(content_hash) != 32 or not is_address(item["patient"]):
        raise ValueError("bad leaf")
    if not isinstance(scope, int) or isinstance(scope, bool) or not 0 < scope < 1 << 64:
        raise ValueError("bad scope")
    return BatchLeaf(record_id, to_checksum_address(item["patient"]), content_hash, scope, parse_cid(str(item["cid"])))


def build_manifest(author: str, leaves: Sequence[BatchLeaf]) -> BatchManifest:
    if not 0 < len(leaves) <= MAX_LEAVES:
        raise ValueError(f"a batch holds 1 to {MAX_LEAVES} records, not {len(leaves)}")
    return BatchManifest(to_checksum_address(author), tuple(leaves))


def patient_address(text: str) -> str:
    """A checksummed address, or InvalidRecord saying what to give instead."""
    if not isinstance(text, str) or not is_address(text):
        raise InvalidRecord(f"{text!r} is not an account address; give the patient's 0x address")
    return str(to_checksum_address(text))
