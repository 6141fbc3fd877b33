"""Build batches for contract tests exactly as the client does (positional Merkle tree, ids by author)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from eth_utils import keccak

from ehr_client.chain.ids import batch_id_of, batched_record_id_of
from ehr_client.chain.merkle import PositionalTree, batch_leaf


@dataclass(frozen=True)
class Leaf:
    index: int
    scope: int
    content_hash: bytes
    cid: bytes


@dataclass
class Batch:
    author: str
    patient: str
    key: bytes
    leaves: list[Leaf]

    @property
    def tree(self) -> PositionalTree:
        return PositionalTree([batch_leaf(x.index, x.scope, x.content_hash, x.cid) for x in self.leaves])

    @property
    def root(self) -> bytes:
        return self.tree.root

    @property
    def scopes(self) -> int:
        union = 0
        for leaf in self.leaves:
            union |= leaf.scope
        return union

    @property
    def batch_id(self) -> bytes:
        return batch_id_of(self.author, self.key)

    def record_id(self, index: int) -> bytes:
        return batched_record_id_of(self.author, self.key, index)

    def anchor_args(self, manifest_hash: bytes = b"\x05" * 32, manifest_cid: bytes = b"\x01\x55\x12\x20" + b"\x05" * 32
                    ) -> tuple:
        return (self.key, self.patient, self.scopes, self.root, len(self.leaves), manifest_hash, manifest_cid)

    def ref(self, position: int, **override: object) -> tuple:
        """The `BatchedRecord` tuple for leaf `position`; `override` forges a field."""
        leaf = self.leaves[position]
        fields = {
            "author": self.author, "batchKey": self.key, "root": self.root, "patient": self.patient,
            "scopes": self.scopes, "leafCount": len(self.leaves), "index": position, "scope": leaf.scope,
            "contentHash": leaf.content_hash, "cidHash": keccak(leaf.cid), "proof": self.tree.proof(position),
        }
        fields.update(override)
        return tuple(fields.values())


def make_batch(author: str, patient: str, scopes: list[int], *, key: bytes | None = None,
               hashes: list[bytes] | None = None, cids: list[bytes] | None = None) -> Batch:
    leaves = []
    for i, scope in enumerate(scopes):
        content_hash = hashes[i] if hashes else (i + 7).to_bytes(32, "big")
        cid = cids[i] if cids else b"\x01\x55\x12\x20" + content_hash
        leaves.append(Leaf(i, scope, content_hash, cid))
    return Batch(author, patient, key or os.urandom(32), leaves)
