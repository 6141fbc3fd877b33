"""The outputs of a finished ceremony that proving and deploying need, checked before use."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ehr_client.claims.ceremony import FINAL_ZKEY, VERIFICATION_KEY, VERIFIER_SOURCE, Ceremony
from ehr_client.claims.toolchain import PROJECT_ROOT, CircuitBuild, build_circuit, run_node
from ehr_client.errors import ZkToolError

_SOLC_SHIM = PROJECT_ROOT / "tools" / "solcjs-shim.js"


@dataclass(frozen=True)
class ClaimSetup:
    """A finished ceremony for the current circuit: final zkey, verification key, Solidity verifier."""

    directory: Path
    build: CircuitBuild

    @classmethod
    def load(cls, directory: Path) -> ClaimSetup:
        build = build_circuit()
        if Ceremony(directory, build).transcript()["phase"] != "done":
            raise ZkToolError(f"the ceremony in {directory} is not finished; every member must contribute, "
                              "then run `ehr claim setup --finish`")
        setup = cls(directory, build)
        for path in (setup.zkey, setup.verification_key, setup.verifier_source):
            if not path.is_file():
                raise ZkToolError(f"{path} is missing; restore the ceremony's files or run a new one")
        return setup

    @property
    def zkey(self) -> Path:
        return self.directory / FINAL_ZKEY

    @property
    def verification_key(self) -> Path:
        return self.directory / VERIFICATION_KEY

    @property
    def verifier_source(self) -> Path:
        return self.directory / VERIFIER_SOURCE

    def verifier_artifact(self) -> dict[str, Any]:
        """ABI and creation bytecode of the generated verifier, compiled with the project's solc
        (solcjs 0.8.28, EVM paris, optimised) and cached next to its source."""
        cached = self.directory / "ClaimsGroth16Verifier.json"
        try:
            artifact: dict[str, Any] = json.loads(cached.read_text())
            if isinstance(artifact, dict) and artifact.get("abi") and str(artifact.get("bytecode", "")).startswith("0x6"):
                return artifact
        except (OSError, ValueError):
            pass  # absent or damaged: compile again from the source
        request = {
            "language": "Solidity",
            "sources": {VERIFIER_SOURCE: {"content": self.verifier_source.read_text()}},
            "settings": {"evmVersion": "paris", "optimizer": {"enabled": True, "runs": 1000000},
                         "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}}},
        }
        output = run_node(_SOLC_SHIM, ["--standard-json"], cwd=PROJECT_ROOT, timeout=300,
                          what="compiling the Groth16 verifier", stdin=json.dumps(request).encode())
        result = json.loads(output[: output.rindex("}") + 1])
        errors = [e for e in result.get("errors", []) if e.get("severity") == "error"]
        if errors:
            raise ZkToolError(f"compiling the Groth16 verifier failed: {errors[0].get('message')}")
        contract = result["contracts"][VERIFIER_SOURCE]["Groth16Verifier"]
        artifact = {"abi": contract["abi"], "bytecode": "0x" + contract["evm"]["bytecode"]["object"]}
        tmp = cached.with_suffix(".tmp")
        tmp.write_text(json.dumps(artifact) + "\n")
        tmp.replace(cached)
        return artifact
