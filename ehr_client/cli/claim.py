"""`ehr claim`: the trusted-setup ceremony, the claim registry, proofs and their checks.

Claims are committed on write: `ehr record add` and `ehr record amend` commit a FHIR record's claim
whenever the deployment has a ClaimRegistry (`ehr claim deploy`)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated

import typer
from web3 import Web3

from ehr_client.cli import _parse
from ehr_client.cli._context import AppContext, app_context
from ehr_client.cli._output import JsonFlag, err, hexid, out, print_json, tx_line
from ehr_client.claims import (
    NO_CHALLENGE,
    Ceremony,
    ClaimProof,
    ClaimRegistry,
    Claims,
    ClaimSetup,
    Predicate,
    check_claim_registry,
    deploy_claim_registry_tx,
)
from ehr_client.errors import ConfigError

app = typer.Typer(help="Prove facts about a record without revealing it (zero-knowledge claims).",
                  no_args_is_help=True)

SetupDir = Annotated[Path | None, typer.Option("--setup", help="The ceremony's directory (default: HOME/claims-setup).")]
PREDICATE_HELP = ("Clauses joined by 'and': type = Observation|Immunization|Patient|Condition; code = SYSTEM|CODE or "
                  "code in A, B; unit = U; value < N (<=, >, >=, =, or value in N..M); date >= YYYY-MM-DD; "
                  "age >= 18 at YYYY-MM-DD.")


def _setup_dir(app_: AppContext, given: Path | None) -> Path:
    return (given or app_.settings.home_dir / "claims-setup").expanduser()


def _claims(app_: AppContext, setup: Path | None, *, prover: bool = False) -> Claims:
    chain = app_.chain()
    address = chain.deployment.contracts.get("ClaimRegistry")
    if not address:
        raise ConfigError("this deployment has no claim registry; deploy one with `ehr claim deploy` after the "
                          "ceremony (`ehr claim setup`)")
    loaded = ClaimSetup.load(_setup_dir(app_, setup)) if prover else None
    return Claims(app_.client(), ClaimRegistry(chain, address), loaded)


def _challenge(text: str | None) -> bytes:
    if text is None:
        return NO_CHALLENGE
    value = text.removeprefix("0x")
    if len(value) != 64:
        raise typer.BadParameter("a challenge is 32 bytes in hex (64 digits)")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise typer.BadParameter("a challenge is 32 bytes in hex (64 digits)") from None


def _predicate(text: str) -> Predicate:
    try:
        return Predicate.parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command("setup")
def setup(
    ctx: typer.Context,
    member: Annotated[list[str] | None, typer.Option(
        "--member", help="A contributing member (repeat; one contribution each). None: only start the ceremony, "
                         "for members to contribute in turn on their own machines (`ehr claim contribute`).")] = None,
    setup_dir: SetupDir = None,
) -> None:
    """Run the whole two-phase Groth16 ceremony here, one contribution per --member (local powers of tau)."""
    directory = _setup_dir(app_context(ctx), setup_dir)
    ceremony = Ceremony(directory)
    ceremony.start()
    if not member:
        out().print(f"ceremony started in {directory}; pass the directory from member to member "
                    "(`ehr claim contribute`), then `ehr claim close` after each phase")
        return
    for phase in ("powers of tau", "circuit"):
        for name in member:
            contribution = ceremony.contribute(name)
            err().print(f"{phase}: {name} contributed {contribution.contribution_hash[:16] or '(hash not reported)'}…")
        if phase == "powers of tau":
            ceremony.close_tau()
    ceremony.finish()
    out().print(f"setup ready in {directory} (every contribution verified); deploy it with `ehr claim deploy`")


@app.command("contribute")
def contribute(
    ctx: typer.Context,
    member: Annotated[str, typer.Option("--member", help="Your name in the transcript.")],
    setup_dir: SetupDir = None,
) -> None:
    """Add your contribution to the ceremony's current phase (your randomness is used once and never stored)."""
    contribution = Ceremony(_setup_dir(app_context(ctx), setup_dir)).contribute(member)
    out().print(f"{contribution.phase} phase: {member} contributed; hash {contribution.contribution_hash or '-'}")


@app.command("close")
def close(ctx: typer.Context, setup_dir: SetupDir = None) -> None:
    """Verify every contribution of the current phase and close it (the second close finishes the setup)."""
    ceremony = Ceremony(_setup_dir(app_context(ctx), setup_dir))
    if ceremony.transcript()["phase"] == "tau":
        ceremony.close_tau()
        out().print("powers of tau verified and closed; members now contribute to the circuit phase")
    else:
        ceremony.finish()
        out().print("circuit phase verified; setup ready, deploy it with `ehr claim deploy`")


@app.command("deploy")
def deploy(ctx: typer.Context, setup_dir: SetupDir = None,
           force: Annotated[bool, typer.Option("--force", help="Replace a claim registry the deployment already "
                                               "has (its commitments stay with it).")] = False) -> None:
    """Deploy the ceremony's Groth16 verifier and a ClaimRegistry; add it to the deployment file."""
    app_ = app_context(ctx)
    loaded = ClaimSetup.load(_setup_dir(app_, setup_dir))
    chain = app_.chain()
    current = chain.deployment.contracts.get("ClaimRegistry")
    if current and not force and chain.w3.eth.get_code(Web3.to_checksum_address(current)):
        raise ConfigError(f"this deployment already has a claim registry at {current}; the commitments of every "
                          "record written since live there. Pass --force to deploy another one anyway")
    address, tx_hash = deploy_claim_registry_tx(chain, app_.account(), loaded)
    deployment = dataclasses.replace(chain.deployment, contracts={**chain.deployment.contracts,
                                                                  "ClaimRegistry": address},
                                     created_by={**chain.deployment.created_by, "ClaimRegistry": tx_hash})
    deployment.save(app_.deployment_file)
    out().print(f"ClaimRegistry at {address}, written to {app_.deployment_file}")


@app.command("check-registry")
def check_registry(ctx: typer.Context, setup_dir: SetupDir = None, json_: JsonFlag = False) -> None:
    """Check that this deployment's claim registry verifies proofs with this setup's verifier (and the
    setup's contributions with its transcript): run it before trusting a registry's ClaimProven events."""
    app_ = app_context(ctx)
    loaded = ClaimSetup.load(_setup_dir(app_, setup_dir))
    chain = app_.chain()
    address = chain.deployment.contracts.get("ClaimRegistry")
    if not address:
        raise ConfigError("this deployment has no claim registry; deploy one with `ehr claim deploy`")
    checked = check_claim_registry(chain, address, loaded,
                                   creation_tx=chain.deployment.created_by.get("ClaimRegistry"))
    if json_:
        print_json({"registry": checked.registry, "verifier": checked.verifier, "setup": str(loaded.directory),
                    "members": list(checked.members), "matches": True})
        return
    out().print(f"ClaimRegistry {checked.registry} verifies with {checked.verifier}, the verifier of the setup in "
                f"{loaded.directory}")
    out().print(f"  circuit phase contributions: {', '.join(checked.members)} (sound if any one of them was honest)")


@app.command("prove")
def prove(
    ctx: typer.Context,
    record: Annotated[str, typer.Argument(help="The record id.")],
    predicate: Annotated[str, typer.Option("--predicate", help=PREDICATE_HELP)],
    verifier: Annotated[str, typer.Option("--for", help="The verifier's address (or wallet name).")],
    output: Annotated[Path, typer.Option("-o", "--out", help="Where to write the proof (JSON).")],
    challenge: Annotated[str | None, typer.Option("--challenge", help="32 bytes in hex the verifier chose.")] = None,
    setup_dir: SetupDir = None,
) -> None:
    """Prove a predicate about one record's claim to one verifier; the claim itself stays secret."""
    app_ = app_context(ctx)
    if output.exists():
        raise typer.BadParameter(f"{output} exists; choose another --out")
    claims = _claims(app_, setup_dir, prover=True)
    proof = claims.prove(_parse.record_id(record), predicate, verifier=_parse.address(app_, verifier),
                         challenge=_challenge(challenge))
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(proof.to_json())
    out().print(f"proof of `{proof.predicate.describe()}` for {proof.verifier} written to {output}")


@app.command("verify")
def verify(
    ctx: typer.Context,
    proof_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The proof (JSON).")],
    expect: Annotated[str | None, typer.Option("--expect", help="Refuse unless the proof shows exactly this predicate.")] = None,
    patient: Annotated[str | None, typer.Option("--patient", help="Refuse unless the record is this patient's.")] = None,
    record: Annotated[bool, typer.Option("--record", help="Check in a transaction as the verifier: a ClaimProven "
                                                          "event enters the patient's audit trail.")] = False,
    json_: JsonFlag = False,
) -> None:
    """Check a claim proof on chain (a view call, or with --record a transaction) and say what it shows."""
    app_ = app_context(ctx)
    proof = ClaimProof.from_json(proof_file.read_bytes()[: 1 << 20])
    expected = _predicate(expect) if expect else None
    claims = _claims(app_, None)
    checked = claims.check(proof, expected=expected,
                           patient=_parse.address(app_, patient) if patient else None)
    tx = claims.record_check(proof, expected=expected) if record else None
    result = {"valid": True, "recordId": hexid(proof.record_id), "patient": checked.patient,
              "verifier": proof.verifier, "predicate": proof.predicate.describe(),
              "predicateId": hexid(checked.predicate_id), "txHash": tx.tx_hash if tx else None}
    if json_:
        print_json(result)
    else:
        out().print(f"valid: record {result['recordId']} of patient {checked.patient} satisfies "
                    f"`{result['predicate']}` (proof for {proof.verifier})" + (f"; {tx_line(tx)}" if tx else ""))
