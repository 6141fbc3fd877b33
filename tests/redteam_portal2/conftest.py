"""The red team's second portal round: the audited-release world of tests/portal_audited (real
Anvil, three `ehr custodian serve` processes, `ehr portal --custodian URL x3`), attacked over raw HTTP."""

from __future__ import annotations

from tests.portal_audited.conftest import (  # noqa: F401  (fixtures)
    anvil,
    audited_portal,
    cli,
    client_of,
    custodians,
    fresh_patient,
    home,
    lab_result,
    observation,
    running,
    world,
)
from tests.portal.conftest import browser, console  # noqa: F401,E402  (fixtures)
