"""The CLI tests' world (Anvil started by the project's AnvilNode, deployment and wallets through `ehr`)."""

from __future__ import annotations

from tests.cli.conftest import anvil, cli, home, lab_record, observation, world  # noqa: F401
