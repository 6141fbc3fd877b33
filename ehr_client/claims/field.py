"""The BN254 scalar field the circuit computes in, and how bytes become field elements."""

from __future__ import annotations

import hashlib

FIELD = 21888242871839275222246405745257275088548364400416034343698204186575808495617
"""The order of BN254's scalar field (snarkjs' "bn128"): every signal is an integer below it."""


def hash_to_field(label: bytes, data: bytes) -> int:
    """A field element standing for `data` (a code, a unit): sha256 under a label, top byte dropped
    so the 248-bit value is below FIELD without reduction bias."""
    return int.from_bytes(hashlib.sha256(label + b"\x00" + data).digest()[1:], "big")


def split_id(record_id: bytes) -> tuple[int, int]:
    """A 32-byte record id as two 128-bit halves (high, low), each far below FIELD."""
    if len(record_id) != 32:
        raise ValueError("a record id is 32 bytes")
    return int.from_bytes(record_id[:16], "big"), int.from_bytes(record_id[16:], "big")
