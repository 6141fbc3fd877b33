"""The CLI tests' own Anvil, home, wallets and world, reused as they are."""

from __future__ import annotations

from tests.cli.conftest import anvil, cli, home, world  # noqa: F401
