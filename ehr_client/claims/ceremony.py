"""The Groth16 trusted setup as a multi-party ceremony among consortium members.

Two phases, both a chain of contributions in which each member adds secret randomness and throws
it away: the universal powers of tau (bn128, 2^11, generated locally, nothing downloaded), then
the circuit-specific phase. The result is sound if any one contributor was honest and destroyed
their randomness. Every contribution is verified against its predecessor when its phase closes
(`snarkjs powersoftau verify`, `snarkjs zkey verify`), and the transcript lists each one's hash.

A real consortium runs it by passing the latest file from member to member; each runs
`ehr claim contribute DIR --member NAME` on their own machine (this module's `contribute`) and
hands the directory on. `run_ceremony` runs every step in one place, for tests and demos.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ehr_client.claims.toolchain import TAU_POWER, CircuitBuild, build_circuit, snarkjs
from ehr_client.errors import ZkToolError

TRANSCRIPT = "transcript.json"
FINAL_ZKEY = "claims_final.zkey"
VERIFICATION_KEY = "verification_key.json"
VERIFIER_SOURCE = "ClaimsGroth16Verifier.sol"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")
_HASH_LINE = re.compile(r"Contribution (?:Response )?Hash[^:\n]*:\s*\n((?:[ \t]*[0-9a-f]{8}(?:[ \t]+[0-9a-f]{8}){3}\s*\n?){4})")


@dataclass(frozen=True)
class Contribution:
    phase: str
    member: str
    file: str
    contribution_hash: str


class Ceremony:
    """One ceremony's directory and transcript; each call moves it one step on."""

    def __init__(self, directory: Path, build: CircuitBuild | None = None) -> None:
        self.directory = directory
        self.build = build or build_circuit()

    # --- state ---------------------------------------------------------------------------------

    @property
    def transcript_path(self) -> Path:
        return self.directory / TRANSCRIPT

    def transcript(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.transcript_path.read_text())
        except FileNotFoundError:
            raise ZkToolError(f"no ceremony in {self.directory}; start one with `ehr claim setup`") from None
        except ValueError:
            raise ZkToolError(f"{self.transcript_path} is damaged; restore it or start the ceremony again") from None
        if data.get("circuit") != self.build.key:
            raise ZkToolError(f"the ceremony in {self.directory} was made for another version of the claims "
                              "circuit; run a new one with `ehr claim setup`")
        return data

    def _save(self, data: dict[str, Any]) -> None:
        tmp = self.transcript_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        tmp.replace(self.transcript_path)

    # --- steps ---------------------------------------------------------------------------------

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.transcript_path.exists():
            raise ZkToolError(f"{self.directory} already holds a ceremony; use an empty directory")
        snarkjs(["powersoftau", "new", "bn128", str(TAU_POWER), "pot_0000.ptau"], cwd=self.directory,
                what="starting the powers of tau")
        self._save({"circuit": self.build.key, "power": TAU_POWER, "phase": "tau", "latest": "pot_0000.ptau",
                    "contributions": []})

    def contribute(self, member: str, *, entropy: str | None = None) -> Contribution:
        """Add `member`'s contribution to the current phase. Entropy defaults to 32 random bytes
        that are never stored."""
        if not _NAME.match(member):
            raise ZkToolError("a member's name is 1-64 letters, digits, spaces, dots, dashes or underscores")
        data = self.transcript()
        phase = data["phase"]
        if phase == "done":
            raise ZkToolError("the ceremony is finished; contributions are closed")
        if any(c["phase"] == phase and c["member"] == member for c in data["contributions"]):
            raise ZkToolError(f"{member} already contributed to this phase; one contribution per member")
        count = sum(c["phase"] == phase for c in data["contributions"]) + 1
        target = f"pot_{count:04d}.ptau" if phase == "tau" else f"claims_{count:04d}.zkey"
        command = ["powersoftau", "contribute"] if phase == "tau" else ["zkey", "contribute"]
        output = snarkjs([*command, data["latest"], target, f"--name={member}",
                          f"-e={entropy or secrets.token_hex(32)}"], cwd=self.directory,
                         what=f"{member}'s contribution")
        match = _HASH_LINE.search(output)
        digest = "".join(match.group(1).split()) if match else ""
        contribution = Contribution(phase, member, target, digest)
        data["contributions"].append(contribution.__dict__)
        data["latest"] = target
        self._save(data)
        return contribution

    def close_tau(self) -> None:
        """Verify every powers-of-tau contribution, then prepare the circuit phase."""
        data = self.transcript()
        if data["phase"] != "tau" or not data["contributions"]:
            raise ZkToolError("the powers of tau phase needs at least one contribution before it closes")
        snarkjs(["powersoftau", "prepare", "phase2", data["latest"], "pot_final.ptau"], cwd=self.directory,
                what="preparing the circuit phase")
        snarkjs(["powersoftau", "verify", "pot_final.ptau"], cwd=self.directory,
                what="verifying the powers of tau contributions")
        snarkjs(["groth16", "setup", str(self.build.r1cs), "pot_final.ptau", "claims_0000.zkey"],
                cwd=self.directory, what="the circuit phase setup")
        data.update(phase="circuit", latest="claims_0000.zkey")
        self._save(data)

    def finish(self) -> None:
        """Verify the circuit phase against the circuit and the powers of tau, then export the
        verification key and the Solidity verifier."""
        data = self.transcript()
        if data["phase"] != "circuit" or not any(c["phase"] == "circuit" for c in data["contributions"]):
            raise ZkToolError("the circuit phase needs at least one contribution before it closes")
        (self.directory / data["latest"]).replace(self.directory / FINAL_ZKEY)
        snarkjs(["zkey", "verify", str(self.build.r1cs), "pot_final.ptau", FINAL_ZKEY], cwd=self.directory,
                what="verifying the circuit phase contributions")
        snarkjs(["zkey", "export", "verificationkey", FINAL_ZKEY, VERIFICATION_KEY], cwd=self.directory,
                what="exporting the verification key")
        snarkjs(["zkey", "export", "solidityverifier", FINAL_ZKEY, VERIFIER_SOURCE], cwd=self.directory,
                what="exporting the Solidity verifier")
        for stale in self.directory.glob("pot_0*.ptau"):
            stale.unlink()
        for stale in self.directory.glob("claims_0*.zkey"):
            stale.unlink()
        data.update(phase="done", latest=FINAL_ZKEY)
        self._save(data)


def run_ceremony(directory: Path, members: Sequence[str]) -> Ceremony:
    """Every step in one place: each member contributes once to each phase."""
    if not members:
        raise ZkToolError("a ceremony needs at least one member")
    ceremony = Ceremony(directory)
    ceremony.start()
    for member in members:
        ceremony.contribute(member)
    ceremony.close_tau()
    for member in members:
        ceremony.contribute(member)
    ceremony.finish()
    return ceremony


def verify_setup(directory: Path, build: CircuitBuild | None = None) -> None:
    """Check a finished setup again (anyone can, from the public files): the powers of tau and the
    final zkey verify, and the contributions inside them are exactly the transcript's, member by
    member and hash by hash, in order. ZkToolError when they are not: a folder whose files were
    swapped for a setup nobody listed (whose toxic waste its maker may know) does not pass."""
    build = build or build_circuit()
    transcript = Ceremony(directory, build).transcript()
    if transcript.get("phase") != "done":
        raise ZkToolError(f"the ceremony in {directory} is not finished")
    tau = snarkjs(["powersoftau", "verify", "pot_final.ptau"], cwd=directory, what="verifying the powers of tau")
    circuit = snarkjs(["zkey", "verify", str(build.r1cs), "pot_final.ptau", FINAL_ZKEY], cwd=directory,
                      what="verifying the setup")
    for phase, found in (("tau", _tau_contributions(tau)), ("circuit", _zkey_contributions(circuit))):
        listed = [(c["member"], c["contribution_hash"]) for c in transcript["contributions"] if c["phase"] == phase]
        if found != listed:
            raise ZkToolError(
                f"the {phase} phase of the setup in {directory} holds contributions by "
                f"{', '.join(name for name, _ in found) or 'nobody'}, but its transcript lists "
                f"{', '.join(name for name, _ in listed) or 'nobody'} (or their hashes differ): the files are not "
                "the ceremony's. Do not use them; fetch the setup from its members again")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_HASH_ROW = re.compile(r"^\s*([0-9a-f]{8}(?:\s+[0-9a-f]{8}){3})\s*$")


def _hash_after(lines: list[str], start: int) -> str:
    rows = [_HASH_ROW.match(line) for line in lines[start:start + 4]]
    return "".join("".join(row.group(1).split()) for row in rows if row) if all(rows) else ""


def _tau_contributions(output: str) -> list[tuple[str, str]]:
    """(member, response hash) of each contribution `powersoftau verify` printed, first first."""
    lines = _ANSI.sub("", output).splitlines()
    found: dict[int, tuple[str, str]] = {}
    current: tuple[int, str] | None = None
    for i, line in enumerate(lines):
        header = re.search(r"Contribution #(\d+): (.*)$", line)
        if header:
            current = (int(header.group(1)), header.group(2).strip())
        elif current is not None and line.rstrip().endswith("Response Hash:"):
            found[current[0]] = (current[1], _hash_after(lines, i + 1))
            current = None
    return [found[n] for n in sorted(found)]


def _zkey_contributions(output: str) -> list[tuple[str, str]]:
    """(member, contribution hash) of each contribution `zkey verify` printed, first first."""
    lines = _ANSI.sub("", output).splitlines()
    found: dict[int, tuple[str, str]] = {}
    for i, line in enumerate(lines):
        header = re.search(r"contribution #(\d+) (.*):\s*$", line)
        if header:
            found[int(header.group(1))] = (header.group(2).strip(), _hash_after(lines, i + 1))
    return [found[n] for n in sorted(found)]
