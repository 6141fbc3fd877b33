"""Merkle trees for batch anchoring, compatible with OpenZeppelin's `MerkleProof`.

Leaves are double-hashed (`keccak256(keccak256(abi.encode(...)))`) so a leaf can never be
mistaken for an inner node, and inner nodes hash each pair in sorted order, which is what
`MerkleProof.verify` expects. An odd node at the end of a layer moves up unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_abi import encode
from eth_utils import keccak


def record_leaf(record_id: bytes, patient: str, content_hash: bytes, scope: int) -> bytes:
    """The leaf of one record, as `RecordRegistry.batchLeaf` computes it."""
    inner = keccak(encode(["bytes32", "address", "bytes32", "uint64"], [record_id, patient, content_hash, scope]))
    return keccak(inner)


def _hash_pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


class MerkleTree:
    """A tree over leaves in the order given; proofs index into that order."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        if not leaves:
            raise ValueError("a Merkle tree needs at least one leaf")
        if any(len(leaf) != 32 for leaf in leaves):
            raise ValueError("Merkle leaves must be 32-byte hashes")
        self._layers: list[list[bytes]] = [list(leaves)]
        while len(self._layers[-1]) > 1:
            layer = self._layers[-1]
            parents = [_hash_pair(layer[i], layer[i + 1]) for i in range(0, len(layer) - 1, 2)]
            if len(layer) % 2:
                parents.append(layer[-1])
            self._layers.append(parents)

    @property
    def root(self) -> bytes:
        return self._layers[-1][0]

    def __len__(self) -> int:
        return len(self._layers[0])

    def proof(self, index: int) -> list[bytes]:
        """The sibling hashes from leaf `index` up to the root."""
        if not 0 <= index < len(self):
            raise IndexError(f"leaf index {index} out of range 0..{len(self) - 1}")
        siblings = []
        for layer in self._layers[:-1]:
            sibling = index ^ 1
            if sibling < len(layer):
                siblings.append(layer[sibling])
            index //= 2
        return siblings


def verify_proof(proof: Sequence[bytes], root: bytes, leaf: bytes) -> bool:
    """Check a proof off chain exactly as `MerkleProof.verify` does on chain."""
    node = leaf
    for sibling in proof:
        node = _hash_pair(node, sibling)
    return node == root
