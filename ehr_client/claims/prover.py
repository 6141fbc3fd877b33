"""Make a Groth16 proof that one record's claim satisfies a predicate (snarkjs fullprove).

The prover refuses before running anything when the claim does not satisfy the predicate or does
not open the commitment on chain: it never produces a proof of something false (the circuit could
not be satisfied anyway). The witness input holds the claim in the clear, so it is written only
to a private temporary directory that is removed at once.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ehr_client.claims.field import split_id
from ehr_client.claims.model import Claim
from ehr_client.claims.predicate import Predicate
from ehr_client.claims.setup import ClaimSetup
from ehr_client.claims.toolchain import snarkjs
from ehr_client.errors import ClaimUnsatisfied, ZkToolError


@dataclass(frozen=True)
class Groth16Proof:
    """The three points as IClaimRegistry.Proof takes them (B's coordinates in Solidity order)."""

    a: tuple[int, int]
    b: tuple[tuple[int, int], tuple[int, int]]
    c: tuple[int, int]

    def as_struct(self) -> tuple[list[int], list[list[int]], list[int]]:
        return list(self.a), [list(self.b[0]), list(self.b[1])], list(self.c)


def public_signals(commitment: int, record_id: bytes, binding: int, predicate: Predicate) -> list[int]:
    """The circuit's public inputs in declaration order, as ClaimRegistry rebuilds them."""
    kind, unit, value_lo, value_hi, date_lo, date_hi, code_check, codes = predicate.as_struct()
    high, low = split_id(record_id)
    return [commitment, high, low, binding, kind, unit, value_lo, value_hi, date_lo, date_hi, int(code_check),
            *codes]


def circuit_inputs(signals: list[int], claim: Claim, salt: int) -> dict[str, object]:
    """The witness input: the public signals by name, then the claim and the salt (secret)."""
    names = ["commitment", "recordHi", "recordLo", "binding", "kind", "unit", "valueLo", "valueHi", "dateLo",
             "dateHi", "codeCheck"]
    inputs: dict[str, object] = {name: str(value) for name, value in zip(names, signals, strict=False)}
    inputs["codes"] = [str(c) for c in signals[len(names):]]
    inputs.update(code=str(claim.code), claimUnit=str(claim.unit), value=str(claim.value), date=str(claim.date),
                  salt=str(salt))
    return inputs


_WORK_PREFIX = "ehr-claim-"


def sweep_stale_work(root: Path | None = None) -> list[Path]:
    """Remove the work folders of provers that died mid-proof (their witness input holds the claim and
    its salt); a folder is named after its prover's pid, so only folders of dead processes go."""
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{_WORK_PREFIX}*-*"):
        pid_text = folder.name[len(_WORK_PREFIX):].split("-", 1)[0]
        if not pid_text.isdigit() or folder.stat().st_uid != os.geteuid():
            continue
        try:
            os.kill(int(pid_text), 0)
            continue  # its prover still runs
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # another user's live process
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def prove(setup: ClaimSetup, claim: Claim, salt: int, record_id: bytes, commitment: int, binding: int,
          predicate: Predicate) -> Groth16Proof:
    if claim.commitment(record_id, salt) != commitment:
        raise ClaimUnsatisfied("this record's claim does not open the commitment on chain; it was committed by "
                               "another client version or altered. Nothing was proven")
    if not predicate.holds_for(claim):
        raise ClaimUnsatisfied("the record does not satisfy this predicate, so no proof was made; check the "
                               "predicate (type, code, unit, bounds) against what you want to show")
    signals = public_signals(commitment, record_id, binding, predicate)
    inputs = circuit_inputs(signals, claim, salt)
    sweep_stale_work()
    with tempfile.TemporaryDirectory(prefix=f"{_WORK_PREFIX}{os.getpid()}-") as work:
        folder = Path(work)
        os.chmod(folder, 0o700)
        (folder / "input.json").write_text(json.dumps(inputs))
        snarkjs(["groth16", "fullprove", "input.json", str(setup.build.wasm), str(setup.zkey), "proof.json",
                 "public.json"], cwd=folder, timeout=300, what="proving the claim")
        raw = json.loads((folder / "proof.json").read_text())
        public = [int(x) for x in json.loads((folder / "public.json").read_text())]
    if public != signals:
        raise ZkToolError("snarkjs proved other public inputs than requested; check the circuit build")
    pa, pb, pc = raw["pi_a"], raw["pi_b"], raw["pi_c"]
    return Groth16Proof((int(pa[0]), int(pa[1])),
                        ((int(pb[0][1]), int(pb[0][0])), (int(pb[1][1]), int(pb[1][0]))),
                        (int(pc[0]), int(pc[1])))
