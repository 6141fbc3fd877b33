"""The manifest of a batch: the records of one patient anchored under one Merkle root.

    {"format": "ehr-batch-manifest/2", "author": "0x…", "patient": "0x…", "batchKey": "0x…",
     "scopes": 6, "leaves": [{"scope": 2, "contentHash": "0x…", "cid": "b…"}, …]}

Leaf ``i`` of the tree is `batch_leaf(i, scope, contentHash, cid)` of entry ``i`` at position ``i``
(`ehr_client.chain.merkle`), and its record id is `batched_record_id_of(author, batchKey, i)`. The
manifest is stored in the BlobStore; its sha256 and CID are anchored with the root, the patient,
the union of the scopes and the leaf count in the same transaction, which checks the author's right
to write that patient's scopes. A reader trusts a manifest only when all of that matches the chain
(`BatchManifest.check`). It holds only what the chain shows for single records (pseudonymous
addresses, hashes, scopes, pointers).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from eth_utils import is_address, keccak, to_checksum_address

from ehr_client._json import load_untrusted
from ehr_client.chain.ids import batched_record_id_of
from ehr_client.chain.merkle import PositionalTree, batch_leaf
from ehr_client.errors import IntegrityError, InvalidRecord
from ehr_client.storage import BlobStore, Cid, cid_to_bytes, parse_cid

MANIFEST_FORMAT = "ehr-batch-manifest/2"
MAX_LEAVES = 1 << 10  # as RecordRegistry allows
MAX_MANIFEST_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class BatchLeaf:
    """One record of a batch, as the manifest lists it."""

    scope: int
    content_hash: bytes
    cid: Cid

    def leaf(self, index: int) -> bytes:
        return batch_leaf(index, self.scope, self.content_hash, cid_to_bytes(self.cid))

    @property
    def cid_hash(self) -> bytes:
        return bytes(keccak(cid_to_bytes(self.cid)))

    def to_json(self) -> dict[str, Any]:
        return {"scope": self.scope, "contentHash": "0x" + self.content_hash.hex(), "cid": str(self.cid)}


@dataclass(frozen=True)
class BatchManifest:
    author: str
    patient: str
    batch_key: bytes
    leaves: tuple[BatchLeaf, ...]

    @property
    def scopes(self) -> int:
        union = 0
        for leaf in self.leaves:
            union |= leaf.scope
        return union

    def record_id(self, index: int) -> bytes:
        return batched_record_id_of(self.author, self.batch_key, index)

    def to_bytes(self) -> bytes:
        return json.dumps(
            {"format": MANIFEST_FORMAT, "author": self.author, "patient": self.patient,
             "batchKey": "0x" + self.batch_key.hex(), "scopes": self.scopes,
             "leaves": [leaf.to_json() for leaf in self.leaves]},
            separators=(",", ":"), sort_keys=True,
        ).encode()

    @cached_property
    def tree(self) -> PositionalTree:
        return PositionalTree([leaf.leaf(i) for i, leaf in enumerate(self.leaves)])

    @property
    def root(self) -> bytes:
        return self.tree.root

    def sha256(self) -> bytes:
        return hashlib.sha256(self.to_bytes()).digest()

    def check(self, *, author: str, patient: str, batch_key: bytes, root: bytes, scopes: int, leaf_count: int) -> None:
        """Raise IntegrityError unless this manifest is exactly the batch the chain anchored."""
        if (self.author, self.patient, self.batch_key) != (author, patient, batch_key):
            raise IntegrityError("its manifest names another author, patient or batch key than the chain")
        if len(self.leaves) != leaf_count or self.scopes & ~scopes:
            raise IntegrityError("its manifest lists another number of leaves, or scopes the batch was not anchored for")
        if self.root != root:
            raise IntegrityError("the leaves its manifest lists do not hash to the anchored Merkle root")

    @classmethod
    def from_bytes(cls, data: bytes) -> BatchManifest:
        """Parse an untrusted manifest; anything malformed raises IntegrityError."""
        try:
            doc = load_untrusted(data, max_depth=4, max_bytes=MAX_MANIFEST_BYTES)
            raw = doc["leaves"]
            key = bytes.fromhex(str(doc["batchKey"]).removeprefix("0x"))
            if doc.get("format") != MANIFEST_FORMAT or not isinstance(raw, list) or len(key) != 32:
                raise ValueError("not a batch manifest")
            if not is_address(doc["author"]) or not is_address(doc["patient"]):
                raise ValueError("bad address")
            if not 0 < len(raw) <= MAX_LEAVES:
                raise ValueError("bad leaf count")
            leaves = tuple(_parse_leaf(item) for item in raw)
            return cls(to_checksum_address(doc["author"]), to_checksum_address(doc["patient"]), key, leaves)
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError, InvalidRecord, RecursionError):
            raise IntegrityError("its manifest is not a valid batch manifest") from None


def fetch_manifest_bytes(store: BlobStore, cid: Cid) -> bytes:
    """A manifest's stored bytes, refused as soon as they pass `MAX_MANIFEST_BYTES`: an anchored
    pointer may name any blob, and no listing should read a huge one whole to find out."""
    parts, size = [], 0
    for chunk in store.iter_get(cid):
        size += len(chunk)
        if size > MAX_MANIFEST_BYTES:
            raise InvalidRecord(f"not a batch manifest: more than {MAX_MANIFEST_BYTES} bytes")
        parts.append(chunk)
    return b"".join(parts)


def _parse_leaf(item: Any) -> BatchLeaf:
    content_hash = bytes.fromhex(str(item["contentHash"]).removeprefix("0x"))
    scope = item["scope"]
    if len(content_hash) != 32:
        raise ValueError("bad leaf")
    if not isinstance(scope, int) or isinstance(scope, bool) or not 0 < scope < 1 << 64:
        raise ValueError("bad scope")
    return BatchLeaf(scope, content_hash, parse_cid(str(item["cid"])))


def build_manifest(author: str, patient: str, batch_key: bytes, leaves: Sequence[BatchLeaf]) -> BatchManifest:
    if not 0 < len(leaves) <= MAX_LEAVES:
        raise ValueError(f"a batch holds 1 to {MAX_LEAVES} records, not {len(leaves)}")
    return BatchManifest(to_checksum_address(author), to_checksum_address(patient), bytes(batch_key), tuple(leaves))


def address(text: str, *, what: str = "patient") -> str:
    """A checksummed address, or InvalidRecord saying what to give instead."""
    checksummed = _checksummed(text) if isinstance(text, str) else None
    if checksummed is None:
        raise InvalidRecord(f"{text!r} is not an account address; give the {what}'s 0x address")
    return checksummed


@lru_cache(maxsize=1024)
def _checksummed(text: str) -> str | None:
    """Two keccaks a call otherwise, and a batch names the same few patients on every record."""
    return str(to_checksum_address(text)) if is_address(text) else None
