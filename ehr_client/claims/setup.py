"""The outputs of a finished ceremony that proving and deploying need, checked before use."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ehr_client.claims.ceremony import FINAL_ZKEY, VERIFICATION_KEY, VERIFIER_SOURCE, Ceremony, verify_setup
from ehr_client.claims.toolchain import PROJECT_ROOT, CircuitBuild, build_circuit, run_node, snarkjs
from ehr_client.errors import ZkToolError

_SOLC_SHIM = PROJECT_ROOT / "tools" / "solcjs-shim.js"


@dataclass(frozen=True)
class ClaimSetup:
    """A finished ceremony for the current circuit: final zkey, verification key, Solidity verifier."""

    directory: Path
    build: CircuitBuild

    @classmethod
    def load(cls, directory: Path) -> ClaimSetup:
        directory = Path(directory).expanduser().resolve()  # snarkjs runs elsewhere: never a relative path
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
        """ABI and creation bytecode of the Groth16 verifier for this setup's final zkey, after the
        setup is verified (`verify_setup`): exported from the zkey and compiled with the project's
        solc (solcjs 0.8.28, EVM paris, optimised) every time, so no verifier source or artifact
        lying in the folder is ever trusted (anyone who handled the folder could have replaced it)."""
        verify_setup(self.directory, self.build)
        with tempfile.TemporaryDirectory(prefix="ehr-verifier-") as scratch:
            source = Path(scratch) / VERIFIER_SOURCE
            snarkjs(["zkey", "export", "solidityverifier", str(self.zkey.resolve()), str(source)], cwd=Path(scratch),
                    what="exporting the Groth16 verifier from the final zkey")
            verifier_source = source.read_text()
        request = {
            "language": "Solidity",
            "sources": {VERIFIER_SOURCE: {"content": verifier_source}},
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
        return {"abi": contract["abi"], "bytecode": "0x" + contract["evm"]["bytecode"]["object"]}
