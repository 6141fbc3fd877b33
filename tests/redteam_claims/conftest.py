"""Red-team fixtures: the claims tests' chain, ceremony, registry and people, reused as they are."""

from __future__ import annotations

from tests.claims.conftest import claim_registry_address, claim_setup, claims_for, events, world  # noqa: F401
from tests.client.conftest import ids, rpc_url, suite  # noqa: F401
