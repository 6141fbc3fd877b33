"""Bad input gets a typed, clear error before any key is unlocked (the brief's CLI rule). `ehr grant`
unlocks the wallet (`app_.client()`) before it parses --for, --until and --deadline, and `ehr record get`
unlocks it before it looks the record up: a patient types her password, then learns the duration was
a typo. Shown with a wrong password: the answer is about the password, not about the input."""

from __future__ import annotations

import pytest

from tests.cli.conftest import Cli

ABSENT = "0x" + "ab" * 32


@pytest.mark.parametrize(("args", "wallet", "expected"), [
    (("grant", "lab", "--scopes", "lab", "--for", "0s"), "patient", "duration"),
    (("grant", "lab", "--scopes", "lab", "--until", "2001-01-01T00:00:00Z"), "patient", "expired"),
    (("grant", "lab", "--scopes", "lab", "--sign-only", "--deadline", "soon"), "patient", "duration"),
    (("record", "get", ABSENT), "doctor", "no record"),
], ids=["for-zero", "until-past", "deadline-garbage", "get-absent-record"])
def test_bad_input_is_refused_before_the_wallet_is_unlocked(cli: Cli, world: dict[str, str], args: tuple[str, ...],
                                                            wallet: str, expected: str) -> None:
    result = cli(*args, wallet=wallet, expect=None, env={"EHR_PASSWORD": "not-the-password"})
    text = " ".join(((result.stderr or "") + (result.stdout or "")).split())
    assert result.exit_code != 0
    assert "password" not in text.lower(), text
    assert expected in text.lower(), text
