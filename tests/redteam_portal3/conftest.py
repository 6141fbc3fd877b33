"""The red team's third portal round: the CLI world of tests/portal (real Anvil, `ehr portal
--relayer` as a real process over the world's local store), attacked over raw HTTP and, for the
consent findings, through the world's own clients and `ehr record recover`."""

from __future__ import annotations

from tests.portal.conftest import anvil, cli, home, portal, world  # noqa: F401  (fixtures)
from tests.portal_audited.conftest import client_of  # noqa: F401  (fixture)
from tests.cli.conftest import observation  # noqa: F401  (fixture)
