"""The red team's portal fixtures: the portal suite's world (real Anvil, deployment, `ehr portal`
process relaying with the hospital's wallet, Debian Chromium), plus in-process clients an attacker
would build for themselves (a consortium member writing records with its own code)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ehr_client.chain.client import ChainClient
from ehr_client.chain.deployment import Deployment
from ehr_client.client import EHRClient
from ehr_client.crypto import generate_x25519_keypair
from ehr_client.keys.identity import Identity
from ehr_client.storage import LocalStore
from tests.cli.conftest import CAST, NETWORK, anvil, cli, dev_key, home, world  # noqa: F401
from tests.portal.conftest import browser, console, page, patient_wallet, portal  # noqa: F401


def member_client(home: Path, rpc_url: str, name: str, state: Path) -> EHRClient:
    """What a member with its own code has: its wallet key, the deployment, the shared store."""
    deployment = Deployment.load(home / "deployments" / f"{NETWORK}.json")
    identity = Identity.from_private_keys(dev_key(CAST.index(name)), {1: generate_x25519_keypair().private_key})
    return EHRClient(ChainClient(rpc_url, deployment), LocalStore(home / "store"), identity, state_dir=state)


@pytest.fixture(scope="session")
def lab_client(world: dict[str, str], home: Path, anvil: Any, tmp_path_factory: pytest.TempPathFactory) -> EHRClient:
    return member_client(home, anvil.rpc_url, "lab", tmp_path_factory.mktemp("lab-state"))
