"""The compiled contract artifacts the client ships (ABI and creation bytecode)."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import resources
from typing import Any

CONTRACT_NAMES = ("Consortium", "KeyRegistry", "RecordRegistry", "ConsentManager")
OPTIONAL_CONTRACT_NAMES = ("ClaimRegistry",)
"""Deployed after the suite, once its trusted setup exists (`ehr claim setup`); not in `abi_hash`."""
ARTIFACT_NAMES = CONTRACT_NAMES + OPTIONAL_CONTRACT_NAMES


def artifact_json(name: str, abi: list[dict[str, Any]], bytecode: str) -> str:
    """The canonical text of one artifact file, so regenerating it is byte-for-byte stable."""
    if bytecode and not bytecode.startswith("0x"):
        bytecode = "0x" + bytecode
    return json.dumps({"contractName": name, "abi": abi, "bytecode": bytecode}, indent=1, sort_keys=True) + "\n"


@cache
def load_artifact(name: str) -> dict[str, Any]:
    """ABI and bytecode of one contract, from the package data."""
    if name not in ARTIFACT_NAMES:
        raise KeyError(f"unknown contract {name!r}; known: {', '.join(ARTIFACT_NAMES)}")
    text = resources.files("ehr_client.abi").joinpath(f"{name}.json").read_text()
    artifact: dict[str, Any] = json.loads(text)
    return artifact


def abi_hash() -> str:
    """sha256 over the ABIs of every contract, to tell whether a deployment matches this client."""
    digest = hashlib.sha256()
    for name in CONTRACT_NAMES:
        digest.update(json.dumps(load_artifact(name)["abi"], sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()
