"""The proof a patient hands a verifier: one JSON document, checked strictly when read.

    {"format": "ehr-claim-proof/1", "chainId": 31337, "claimRegistry": "0x…", "recordId": "0x…",
     "verifier": "0x…", "challenge": "0x…", "predicate": {…canonical predicate…},
     "proof": {"a": ["…", "…"], "b": [["…", "…"], ["…", "…"]], "c": ["…", "…"]}}

Nothing in it is health data: the predicate is what the verifier asked for, the record id and the
addresses are already on chain, and the proof reveals nothing else (zero knowledge).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from eth_utils import is_hex_address, to_checksum_address

from ehr_client._json import load_untrusted
from ehr_client.claims.predicate import Predicate
from ehr_client.claims.prover import Groth16Proof
from ehr_client.errors import MalformedProof

FORMAT = "ehr-claim-proof/1"
MAX_SIZE = 16 * 1024
_KEYS = {"format", "chainId", "claimRegistry", "recordId", "verifier", "challenge", "predicate", "proof"}


@dataclass(frozen=True)
class ClaimProof:
    chain_id: int
    registry: str
    record_id: bytes
    verifier: str
    challenge: bytes
    predicate: Predicate
    proof: Groth16Proof

    def to_json(self) -> str:
        a, b, c = self.proof.as_struct()
        return json.dumps({
            "format": FORMAT, "chainId": self.chain_id, "claimRegistry": self.registry,
            "recordId": "0x" + self.record_id.hex(), "verifier": self.verifier,
            "challenge": "0x" + self.challenge.hex(), "predicate": self.predicate.to_json(),
            "proof": {"a": [str(x) for x in a], "b": [[str(x) for x in row] for row in b], "c": [str(x) for x in c]},
        }, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> ClaimProof:
        try:
            data = load_untrusted(text, max_depth=4, max_bytes=MAX_SIZE)
            if not isinstance(data, dict) or set(data) != _KEYS or data["format"] != FORMAT:
                raise ValueError("keys")
            proof = data["proof"]
            if not isinstance(proof, dict) or set(proof) != {"a", "b", "c"}:
                raise ValueError("proof")
            a, c = _point(proof["a"]), _point(proof["c"])
            b = proof["b"]
            if not isinstance(b, list) or len(b) != 2:
                raise ValueError("b")
            chain_id = data["chainId"]
            if type(chain_id) is not int or chain_id <= 0:
                raise ValueError("chain")
            return cls(chain_id, _address(data["claimRegistry"]), _bytes32(data["recordId"]),
                       _address(data["verifier"]), _bytes32(data["challenge"]), Predicate.from_json(data["predicate"]),
                       Groth16Proof(a, (_point(b[0]), _point(b[1])), c))
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            raise MalformedProof("this is not a claim proof (ehr-claim-proof/1): it is damaged or of another "
                                 "format; ask the patient to send it again") from None


def _point(value: Any) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) != 2 or not all(isinstance(x, str) and x.isdigit() for x in value):
        raise ValueError("point")
    x, y = int(value[0]), int(value[1])
    if not (x < 2**256 and y < 2**256):
        raise ValueError("point")
    return x, y


def _address(value: Any) -> str:
    if not isinstance(value, str) or not is_hex_address(value):
        raise ValueError("address")
    return str(to_checksum_address(value))


def _bytes32(value: Any) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) != 66:
        raise ValueError("bytes32")
    return bytes.fromhex(value[2:])


