"""Compile contracts/*.sol offline and write a Hardhat-format build-info file for slither.

Slither's compile layer cannot drive solcjs, but it reads Hardhat's `artifacts/build-info/*.json`
(the compiler's standard-JSON input and output side by side). This module builds the standard-JSON
input from the sources on disk (imports resolved here, with the same OpenZeppelin remapping and
compiler settings as ape-config.yaml), compiles it with the project's solcjs shim, and writes
`<out>/artifacts/build-info/<id>.json` next to a placeholder `hardhat.config.js`.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import subprocess
from pathlib import Path
from typing import Any

from ehr_client.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
SOLC_VERSION = "0.8.28"
EVM_VERSION = "cancun"
OPTIMIZER_RUNS = 1_000_000
REMAPPINGS = {"@openzeppelin/contracts/": "node_modules/@openzeppelin/contracts/"}
COMPILE_TIMEOUT = 300

_IMPORT = re.compile(r"""^\s*import\s+(?:[^"';]*?\s+from\s+)?["']([^"']+)["']\s*;""", re.MULTILINE)
_OUTPUTS = ["abi", "evm.bytecode", "evm.deployedBytecode", "evm.methodIdentifiers", "metadata", "devdoc", "userdoc"]


def source_unit_name(imported: str, importer: str) -> str:
    """The name solc gives an import: relative to the importer, else remapped, else as written."""
    if imported.startswith(("./", "../")):
        return posixpath.normpath(posixpath.join(posixpath.dirname(importer), imported))
    for prefix, target in REMAPPINGS.items():
        if imported.startswith(prefix):
            return target + imported[len(prefix):]
    return imported


def collect_sources(root: Path = REPO_ROOT) -> dict[str, str]:
    """Every contracts/*.sol file and everything it imports, transitively, by source unit name."""
    queue = sorted(p.relative_to(root).as_posix() for p in (root / "contracts").rglob("*.sol"))
    if not queue:
        raise ConfigError(f"no Solidity sources under {root / 'contracts'}")
    sources: dict[str, str] = {}
    while queue:
        name = queue.pop()
        if name in sources:
            continue
        path = root / name
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"import {name} not found; run `make install` (npm ci) to get node_modules") from None
        sources[name] = text
        queue.extend(source_unit_name(imported, name) for imported in _IMPORT.findall(text))
    return dict(sorted(sources.items()))


def standard_json_input(sources: dict[str, str]) -> dict[str, Any]:
    """The standard-JSON input with ape-config.yaml's compiler settings."""
    return {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": {
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "evmVersion": EVM_VERSION,
            "remappings": [f"{prefix}={target}" for prefix, target in REMAPPINGS.items()],
            "outputSelection": {"*": {"*": _OUTPUTS, "": ["ast"]}},
        },
    }


def find_compiler(root: Path = REPO_ROOT) -> list[str]:
    """The command that runs solc 0.8.28 with native solc's --standard-json surface."""
    shim = root / ".build" / "solcx" / f"solc-v{SOLC_VERSION}"
    if shim.is_file():
        return [str(shim)]
    script = root / "tools" / "solcjs-shim.js"
    if (root / "node_modules" / "solc").is_dir():
        return ["node", str(script)]
    raise ConfigError("no solc found: run `make install` (it writes the solcjs shim into .build/solcx)")


def compile_standard_json(compiler_input: dict[str, Any], root: Path = REPO_ROOT) -> dict[str, Any]:
    """Run the compiler on `compiler_input`; compiler errors (not warnings) raise ConfigError."""
    command = [*find_compiler(root), "--standard-json", "--base-path", str(root)]
    try:
        result = subprocess.run(
            command, input=json.dumps(compiler_input), capture_output=True, text=True, cwd=root,
            timeout=COMPILE_TIMEOUT, check=False,
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(f"solc did not finish within {COMPILE_TIMEOUT}s") from None
    try:
        output: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise ConfigError(f"solc gave no JSON (exit {result.returncode}): {result.stderr.strip()[-500:]}") from None
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise ConfigError("the contracts do not compile: " + "; ".join(e.get("formattedMessage", "") for e in errors))
    return output


def write_build_info(out_dir: Path, root: Path = REPO_ROOT) -> Path:
    """Compile and write a Hardhat-style project for slither in `out_dir`; returns the build-info path.

    `out_dir` gets `hardhat.config.js` (a placeholder: slither only checks it exists), symlinks
    `contracts` and `node_modules` to the repository's (so reported paths are `contracts/...`),
    and `artifacts/build-info/<sha256 of the input>.json`; an existing file for the same input
    (same sources, same settings) is reused without compiling again.
    """
    compiler_input = standard_json_input(collect_sources(root))
    digest = hashlib.sha256(json.dumps(compiler_input, sort_keys=True).encode()).hexdigest()[:32]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "hardhat.config.js").write_text("// placeholder so slither reads artifacts/build-info\n"
                                               "module.exports = {};\n")
    for link in ("contracts", "node_modules"):
        path = out_dir / link
        if path.is_symlink() or path.exists():
            path.unlink()
        path.symlink_to(root / link, target_is_directory=True)
    build_dir = out_dir / "artifacts" / "build-info"
    build_dir.mkdir(parents=True, exist_ok=True)
    path = build_dir / f"{digest}.json"
    if path.is_file():
        return path
    output = compile_standard_json(compiler_input, root)
    for stale in build_dir.glob("*.json"):
        stale.unlink()
    build_info = {
        "_format": "hh-sol-build-info-1",
        "id": digest,
        "solcVersion": SOLC_VERSION,
        "solcLongVersion": _long_version(root),
        "input": compiler_input,
        "output": output,
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(build_info))
    tmp.replace(path)
    return path


def _long_version(root: Path) -> str:
    result = subprocess.run([*find_compiler(root), "--version"], capture_output=True, text=True, timeout=60,
                            check=False)
    match = re.search(r"Version: (\S+)", result.stdout)
    return match.group(1) if match else SOLC_VERSION
