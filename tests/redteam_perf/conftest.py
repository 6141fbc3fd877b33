"""The red team's review of two contract changes: grants stored without a membership check, and the
registry's 256-block hint for a record's event. The client world of tests/client (real Anvil, real
store), with an observing JSON-RPC relay (`rpc_tap`) between a reader and the node."""

from __future__ import annotations

from tests.client.conftest import client_for, ids, observation, people, rpc_url, store, suite  # noqa: F401  (fixtures)
