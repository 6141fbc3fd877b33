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
