"""Poseidon over BN254 with circomlib's parameters, for 8 inputs (the claim commitment).

The same permutation as circomlib's `Poseidon(8)` template and circomlibjs' reference code: 8 full
rounds, 63 partial rounds, x^5 S-box; constants from `poseidon_t9.json` (exported from circomlibjs
by tools/zk/export_poseidon.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from importlib import resources

from ehr_client.claims.field import FIELD

_FULL_ROUNDS = 8
_PARTIAL_ROUNDS = 63
WIDTH = 9


@cache
def _constants() -> tuple[list[int], list[list[int]]]:
    data = json.loads(resources.files("ehr_client.claims").joinpath("poseidon_t9.json").read_text())
    return [int(c, 16) for c in data["C"]], [[int(m, 16) for m in row] for row in data["M"]]


def poseidon8(inputs: Sequence[int]) -> int:
    """Poseidon hash of exactly eight field elements."""
    if len(inputs) != WIDTH - 1 or any(not 0 <= x < FIELD for x in inputs):
        raise ValueError("poseidon8 takes eight field elements")
    constants, matrix = _constants()
    state = [0, *inputs]
    for r in range(_FULL_ROUNDS + _PARTIAL_ROUNDS):
        state = [(a + constants[r * WIDTH + i]) % FIELD for i, a in enumerate(state)]
        if r < _FULL_ROUNDS // 2 or r >= _FULL_ROUNDS // 2 + _PARTIAL_ROUNDS:
            state = [pow(a, 5, FIELD) for a in state]
        else:
            state[0] = pow(state[0], 5, FIELD)
        state = [sum(m * a for m, a in zip(row, state, strict=True)) % FIELD for row in matrix]
    return state[0]
