"""Fixtures for the security tests: the Ape-deployed suite reached through the project's own client.

Ape starts Anvil, deploys the contracts (tests/conftest.py) and controls snapshots and time; the
transactions go through `ChainClient` (web3, locally signed), which is what applications use and
is about fifty times faster than Ape on a reverted call (Ape builds and prints a call trace).
"""

from __future__ import annotations

from typing import Any

import pytest

from ehr_client.chain.client import ChainClient
from ehr_client.chain.deployment import Deployment


@pytest.fixture(scope="session", autouse=True)
def _suite_deployed_first(network: dict[str, Any]) -> None:
    """Deploy the shared suite before any module of this folder takes its chain snapshot.

    Ape snapshots the chain when a module's first test starts. A session fixture first requested
    by a later test of that module (say `network`, after a test that runs its own Anvil) is wiped
    when Ape restores that snapshot at the end of the module, yet stays cached for the session.
    """


@pytest.fixture
def suite_chain(network: dict[str, Any], chain: Any, governors: list[Any]) -> ChainClient:
    """A ChainClient bound to the suite the shared `network` fixture deployed with Ape."""
    deployment = Deployment(
        network="ape-test",
        chain_id=int(chain.chain_id),
        deploy_block=0,
        deployer=governors[0].address,
        contracts={
            "Consortium": network["consortium"].address,
            "KeyRegistry": network["keys"].address,
            "RecordRegistry": network["records"].address,
            "ConsentManager": network["consent"].address,
        },
        governors=[g.address for g in governors],
        threshold=2,
    )
    return ChainClient(str(chain.provider.uri), deployment)
