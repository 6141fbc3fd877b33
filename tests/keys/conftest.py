"""Keystore fixtures: a fresh keystore per test with a cheap scrypt cost (production keeps 2**18)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from ehr_client.keys import Keystore

PASSWORD = "correct horse battery staple"
TEST_SCRYPT_N = 2**4
T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


@pytest.fixture
def keystore(tmp_path: Path) -> Keystore:
    return Keystore(tmp_path / "alice-keys", scrypt_n=TEST_SCRYPT_N)
