"""The ceremony: one contribution per member per phase, every contribution verified, damage detected."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ehr_client.claims import Ceremony, ClaimSetup
from ehr_client.claims.ceremony import FINAL_ZKEY, verify_setup
from ehr_client.errors import ZkToolError
from tests.claims.conftest import MEMBERS


def test_transcript_lists_one_contribution_per_member_and_phase(claim_setup: ClaimSetup) -> None:
    transcript = json.loads((claim_setup.directory / "transcript.json").read_text())
    assert transcript["phase"] == "done" and transcript["circuit"] == claim_setup.build.key
    assert [(c["phase"], c["member"]) for c in transcript["contributions"]] == [
        ("tau", m) for m in MEMBERS] + [("circuit", m) for m in MEMBERS]
    assert all(len(c["contribution_hash"]) == 128 for c in transcript["contributions"])
    verify_setup(claim_setup.directory)


def test_a_damaged_setup_is_detected(claim_setup: ClaimSetup, tmp_path: Path) -> None:
    copy = tmp_path / "setup"
    shutil.copytree(claim_setup.directory, copy)
    zkey = bytearray((copy / FINAL_ZKEY).read_bytes())
    zkey[len(zkey) // 2] ^= 0x01
    (copy / FINAL_ZKEY).write_bytes(bytes(zkey))
    with pytest.raises(ZkToolError):
        verify_setup(copy)
    (copy / "transcript.json").write_text("{")
    with pytest.raises(ZkToolError):
        ClaimSetup.load(copy)


def test_a_member_contributes_once_per_phase_and_never_after_the_end(claim_setup: ClaimSetup,
                                                                      tmp_path: Path) -> None:
    ceremony = Ceremony(tmp_path / "new")
    ceremony.start()
    ceremony.contribute("alice")
    with pytest.raises(ZkToolError, match="already contributed"):
        ceremony.contribute("alice")
    with pytest.raises(ZkToolError, match="letters"):
        ceremony.contribute("--name=evil")
    with pytest.raises(ZkToolError, match="circuit phase needs"):
        ceremony.finish()
    with pytest.raises(ZkToolError, match="finished"):
        Ceremony(claim_setup.directory).contribute("mallory")
    with pytest.raises(ZkToolError, match="already holds"):
        Ceremony(claim_setup.directory).start()


def test_a_damaged_compiled_verifier_is_compiled_again(claim_setup: ClaimSetup, tmp_path: Path) -> None:
    copy = tmp_path / "setup"
    shutil.copytree(claim_setup.directory, copy)
    expected = ClaimSetup.load(claim_setup.directory).verifier_artifact()
    (copy / "ClaimsGroth16Verifier.json").write_text('{"abi": [], "bytec')
    assert ClaimSetup.load(copy).verifier_artifact() == expected


def test_a_verifier_swapped_in_the_folder_is_never_deployed(claim_setup: ClaimSetup, tmp_path: Path) -> None:
    """Whoever handles the folder between members could leave a verifier that accepts anything."""
    copy = tmp_path / "setup"
    shutil.copytree(claim_setup.directory, copy)
    expected = ClaimSetup.load(claim_setup.directory).verifier_artifact()
    accepts_anything = "0x600a600c600039600a6000f3600160005260206000f3"  # returns true for any call
    (copy / "ClaimsGroth16Verifier.json").write_text(json.dumps({"abi": expected["abi"], "bytecode": accepts_anything}))
    (copy / "ClaimsGroth16Verifier.sol").write_text("contract Groth16Verifier { function verifyProof("
                                                     "uint[2] calldata, uint[2][2] calldata, uint[2] calldata, "
                                                     "uint[19] calldata) public pure returns (bool) { return true; } }")
    artifact = ClaimSetup.load(copy).verifier_artifact()
    assert artifact == expected and artifact["bytecode"] != accepts_anything


@pytest.mark.parametrize("forgery", ["member", "hash", "dropped", "added"])
def test_a_transcript_that_is_not_the_files_contributions_fails_verification(
        claim_setup: ClaimSetup, tmp_path: Path, forgery: str) -> None:
    """As when a setup made by someone else is dressed in the genuine transcript: the names and
    hashes inside the powers of tau and the zkey are what count."""
    copy = tmp_path / "setup"
    shutil.copytree(claim_setup.directory, copy)
    transcript = json.loads((copy / "transcript.json").read_text())
    contributions = transcript["contributions"]
    if forgery == "member":
        contributions[0]["member"] = "hospital-z"
    elif forgery == "hash":
        last = contributions[-1]["contribution_hash"]
        contributions[-1]["contribution_hash"] = ("0" if last[0] != "0" else "1") + last[1:]
    elif forgery == "dropped":
        contributions.pop(0)
    else:
        contributions.append({**contributions[-1], "member": "mallory"})
    (copy / "transcript.json").write_text(json.dumps(transcript))
    with pytest.raises(ZkToolError, match="the files are not the ceremony's"):
        verify_setup(copy)
    with pytest.raises(ZkToolError, match="the files are not the ceremony's"):
        ClaimSetup.load(copy).verifier_artifact()  # nothing is deployed from it either
    verify_setup(claim_setup.directory)  # the genuine folder passes
