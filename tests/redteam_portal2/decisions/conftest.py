"""The Python client's world (tests/client): a suite on Ape's Anvil, funded identities, real stores."""

from __future__ import annotations

from tests.client.conftest import client_for, ids, people, rpc_url, store, suite  # noqa: F401  (fixtures)
