"""The red team's third portal round: the CLI world of tests/portal (real Anvil, `ehr portal
--relayer` as a real process over the world's local store, headless Chromium with a test wallet),
attacked over raw HTTP, through the page, and through the world's own clients and `ehr record recover`."""

from __future__ import annotations

from tests.cli.conftest import observation  # noqa: F401  (fixture)
from tests.portal.conftest import anvil, browser, cli, console, home, portal, world  # noqa: F401  (fixtures)
from tests.portal_audited.conftest import client_of, custodians, fresh_patient, running  # noqa: F401  (fixtures)
