"""The Python client's fixtures (real Anvil through Ape, the embedded store, identities by role),
reused so format.js is checked against records written by ehr_client's real write path."""

from tests.client.conftest import client_for, ids, observation, people, rpc_url, store, suite  # noqa: F401
