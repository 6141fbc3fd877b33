"""Batch Merkle trees with fixed leaf positions, as `RecordRegistry` verifies them.

Leaf ``i`` is ``keccak256(keccak256(abi.encode(uint32 i, uint64 scope, bytes32 contentHash,
bytes32 keccak256(cid))))`` (double-hashed, so a leaf can never pass for an inner node) and sits at
position ``i`` of a tree of depth ``ceil(log2(n))`` padded with zero leaves. An inner node is
``keccak256(left || right)`` in position order, so a proof also proves the leaf's position: one
position holds one leaf, and a batched record id (derived from the position) names one record.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_abi import encode
from eth_utils.crypto import keccak_256 as keccak  # eth_utils.keccak without its argument conversion: per leaf

ZERO = bytes(32)


def batch_leaf(index: int, scope: int, content_hash: bytes, cid: bytes) -> bytes:
    """The leaf of the record at `index` of a batch; `cid` is the binary storage pointer.

    abi.encode(uint32, uint64, bytes32, bytes32) is laid out by hand for the usual values (it runs
    once per record written): each in a 32-byte word, integers big-endian; anything else (a short
    hash, a value out of range) goes through eth_abi, which pads or refuses it."""
    if 0 <= index < 1 << 32 and 0 <= scope < 1 << 64 and len(content_hash) == 32:
        encoded = index.to_bytes(32, "big") + scope.to_bytes(32, "big") + bytes(content_hash) + keccak(cid)
    else:
        encoded = encode(["uint32", "uint64", "bytes32", "bytes32"], [index, scope, content_hash, keccak(cid)])
    return keccak(keccak(encoded))


def tree_depth(leaf_count: int) -> int:
    if leaf_count < 1:
        raise ValueError("a Merkle tree needs at least one leaf")
    return (leaf_count - 1).bit_length()


class PositionalTree:
    """A tree over leaves in the order given; leaf i sits at position i."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        if any(len(leaf) != 32 for leaf in leaves):
            raise ValueError("Merkle leaves must be 32-byte hashes")
        depth = tree_depth(len(leaves))
        layer = list(leaves) + [ZERO] * ((1 << depth) - len(leaves))
        self._count = len(leaves)
        self._layers: list[list[bytes]] = [layer]
        while len(layer) > 1:
            layer = [keccak(layer[i] + layer[i + 1]) for i in range(0, len(layer), 2)]
            self._layers.append(layer)

    @property
    def root(self) -> bytes:
        return self._layers[-1][0]

    def __len__(self) -> int:
        return self._count

    def proof(self, index: int) -> list[bytes]:
        """The sibling hashes from leaf `index` up to the root."""
        if not 0 <= index < self._count:
            raise IndexError(f"leaf index {index} out of range 0..{self._count - 1}")
        siblings = []
        for layer in self._layers[:-1]:
            siblings.append(layer[index ^ 1])
            index //= 2
        return siblings


def root_from_proof(leaf: bytes, index: int, leaf_count: int, proof: Sequence[bytes]) -> bytes | None:
    """The root a proof leads to, exactly as the contract computes it (None if the path is malformed)."""
    if not 0 <= index < leaf_count or len(proof) != tree_depth(leaf_count):
        return None
    node = leaf
    for sibling in proof:
        node = keccak(node + sibling) if index % 2 == 0 else keccak(sibling + node)
        index //= 2
    return node
