"""circom2 and snarkjs (npm, pinned in package-lock.json), run as child processes with deadlines.

The tools live in the project's node_modules (`make install`); EHR_NODE_MODULES points elsewhere.
Compiled circuits are cached under .build/zk/<hash of the circuit and tool versions>/ (EHR_ZK_BUILD
moves it), so a rebuild happens only when the circuit or a pin changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ehr_client.errors import ZkToolError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CIRCUIT = PROJECT_ROOT / "circuits" / "claims.circom"
CIRCUIT_NAME = "claims"
TAU_POWER = 11
"""2^11 constraints are enough for the claims circuit (about 1,600)."""


def node_modules() -> Path:
    return Path(os.environ.get("EHR_NODE_MODULES") or PROJECT_ROOT / "node_modules")


def build_root() -> Path:
    return Path(os.environ.get("EHR_ZK_BUILD") or PROJECT_ROOT / ".build" / "zk")


def package_version(name: str) -> str:
    """The installed version of an npm package of node_modules; ZkToolError when it is missing."""
    try:
        return str(json.loads((node_modules() / name / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        raise ZkToolError(f"{name} is not installed in {node_modules()}; run `make install`") from None


def run_node(script: Path, args: Sequence[str], *, cwd: Path, timeout: float, what: str,
             stdin: bytes | None = None) -> str:
    """Run a node script; ZkToolError (with the tool's last words, never our inputs) on failure."""
    node = shutil.which("node")
    if node is None:
        raise ZkToolError("node is not on PATH; install Node.js 20 or later (`make install` needs it too)")
    try:
        done = subprocess.run([node, str(script), *args], cwd=cwd, input=stdin, capture_output=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        raise ZkToolError(f"{what} did not finish within {timeout:.0f}s; retry on a less loaded machine") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()[-3:]
        raise ZkToolError(f"{what} failed: {' / '.join(tail) or f'exit code {done.returncode}'}")
    return (done.stdout + b"\n" + done.stderr).decode(errors="replace")


def snarkjs(args: Sequence[str], *, cwd: Path, timeout: float = 300.0, what: str) -> str:
    return run_node(node_modules() / "snarkjs" / "build" / "cli.cjs", args, cwd=cwd, timeout=timeout, what=what)


@dataclass(frozen=True)
class CircuitBuild:
    """A compiled claims circuit: constraint system and witness generator."""

    directory: Path
    key: str

    @property
    def r1cs(self) -> Path:
        return self.directory / f"{CIRCUIT_NAME}.r1cs"

    @property
    def wasm(self) -> Path:
        return self.directory / f"{CIRCUIT_NAME}_js" / f"{CIRCUIT_NAME}.wasm"

    def constraints(self) -> int:
        info = snarkjs(["r1cs", "info", str(self.r1cs)], cwd=self.directory, timeout=60, what="reading the circuit")
        for line in info.splitlines():
            if "# of Constraints:" in line:
                return int(line.rsplit(":", 1)[1])
        raise ZkToolError("snarkjs did not report the constraint count")


def circuit_key() -> str:
    digest = hashlib.sha256(CIRCUIT.read_bytes())
    for name in ("circom2", "circomlib", "snarkjs"):
        digest.update(f"{name}@{package_version(name)}".encode())
    return digest.hexdigest()[:16]


@cache
def build_circuit() -> CircuitBuild:
    """Compile the circuit once per source and tool versions (cached on disk)."""
    key = circuit_key()
    target = build_root() / key
    build = CircuitBuild(target, key)
    if build.r1cs.exists() and build.wasm.exists():
        return build
    build_root().mkdir(parents=True, exist_ok=True)
    # circom2 is WebAssembly (WASI): it sees paths relative to its working directory only.
    staging = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=build_root()))
    try:
        run_node(node_modules() / "circom2" / "cli.js",
                 [os.path.relpath(CIRCUIT, PROJECT_ROOT), "--r1cs", "--wasm", "-l",
                  os.path.relpath(node_modules(), PROJECT_ROOT), "-o", os.path.relpath(staging, PROJECT_ROOT)],
                 cwd=PROJECT_ROOT, timeout=300, what="compiling the claims circuit")
        if not (build.r1cs.exists() and build.wasm.exists()):
            shutil.rmtree(target, ignore_errors=True)  # an incomplete build; a complete one (another process's) stays
            try:
                staging.rename(target)
            except OSError:
                if not (build.r1cs.exists() and build.wasm.exists()):
                    raise ZkToolError(f"cannot place the compiled circuit in {target}; check that folder") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return build
