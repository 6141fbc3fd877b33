"""The red team's review of this session's changes (round five): batched records sealed under one
ephemeral X25519 key per reader, FHIR invariants skipped when their elements are absent, and batched
records found by id. The client world of tests/client and tests/batch (real Anvil, real store)."""

from __future__ import annotations

from tests.batch.conftest import writer_lab  # noqa: F401  (fixture)
from tests.client.conftest import client_for, ids, observation, people, rpc_url, store, suite  # noqa: F401  (fixtures)
