"""Three real custodian processes on Ape's Anvil (tests/custodian's package fixtures)."""

from __future__ import annotations

from tests.custodian.conftest import env, ids, rpc_url, running  # noqa: F401  (fixtures)
