"""The red team's fourth look at this session's fixes, in the CLI world of tests/portal (real Anvil,
`ehr portal --relayer` over the world's local store), attacked over raw HTTP and through the world's clients."""

from __future__ import annotations

from tests.cli.conftest import observation  # noqa: F401  (fixture)
from tests.portal.conftest import anvil, browser, cli, console, home, portal, world  # noqa: F401  (fixtures)
from tests.portal_audited.conftest import client_of, custodians, fresh_patient, running  # noqa: F401  (fixtures)
