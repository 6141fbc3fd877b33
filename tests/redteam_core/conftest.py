"""Red-team fixtures for the core: the client tests' chain (Ape's Anvil), deployed suite, people and store,
reused as they are; the attacker acts through its own EHRClient or raw contract calls."""

from __future__ import annotations

from tests.client.conftest import (  # noqa: F401
    client_for, condition, ids, observation, people, rpc_url, store, suite,
)
