"""Fixtures for the `ehr` command: its own Anvil (not Ape's), a home directory, and a runner.

The session builds a small world through the CLI itself: seven wallets imported from Anvil's dev
mnemonic, the suite deployed with two governors, a lab, a hospital and a doctor admitted, the
patient registered, and every key published. Keys use a low scrypt cost (EHR_SCRYPT_N, test-only).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result
from eth_account import Account
from typer.testing import CliRunner

from ehr_client.cli import app
from ehr_client.dev.processes import stop_group
from ehr_client.dev.node import DEV_MNEMONIC, AnvilNode

PASSWORD = "correct horse battery staple"
CAST = ("gov-a", "gov-b", "hospital", "doctor", "lab", "patient", "stranger", "rotator")
NETWORK = "cli-test"


def dev_key(index: int) -> str:
    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}").key.hex()


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cli:
    """Runs `ehr` in-process with a fixed environment; checks the exit code unless `expect=None`."""

    env: dict[str, str]
    runner: CliRunner = field(default_factory=CliRunner)

    def __call__(self, *args: str, wallet: str | None = None, expect: int | None = 0,
                 env: dict[str, str] | None = None, input: str | None = None) -> Result:
        argv = (["--wallet", wallet] if wallet else []) + list(args)
        result = self.runner.invoke(app, argv, env={**self.env, **(env or {})}, input=input)
        if expect is not None:
            assert result.exit_code == expect, (
                f"ehr {' '.join(argv)} exited {result.exit_code}, expected {expect}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}\nexception: {result.exception!r}"
            )
        return result

    def json(self, *args: str, wallet: str | None = None) -> Any:
        return json.loads(self(*args, "--json", wallet=wallet).stdout)

    def address(self, wallet: str) -> str:
        return str(self.json("keys", "list", wallet=wallet)[0]["address"])


def cli_env(home: Path, rpc_url: str | None, *, network: str = NETWORK) -> dict[str, str]:
    env = {
        "EHR_HOME": str(home),
        "EHR_PASSWORD": PASSWORD,
        "EHR_SCRYPT_N": "16",
        "EHR_NETWORK": network,
        "EHR_DEPLOYMENTS_DIR": str(home / "deployments"),
        "EHR_STORE": "local",
        "COLUMNS": "200",
    }
    if rpc_url:
        env["EHR_RPC_URL"] = rpc_url
    return env


def import_wallets(cli: Cli, home: Path, names: Sequence[str]) -> None:
    for name in names:
        key_file = home / f"{name}.key"
        key_file.write_text(dev_key(CAST.index(name)))
        cli("keys", "import", "--key-file", str(key_file), wallet=name)


@pytest.fixture(scope="session")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilNode]:
    node = AnvilNode(log_path=tmp_path_factory.mktemp("anvil") / "anvil.log")
    node.start()
    try:
        yield node
    finally:
        if node.pid is not None:
            stop_group(node.pid)  # reaps the launcher, so no wait on a zombie (see AnvilNode.stop)
        node.stop()


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ehr-home")


@pytest.fixture(scope="session")
def cli(home: Path, anvil: AnvilNode) -> Cli:
    return Cli(cli_env(home, anvil.rpc_url))


@pytest.fixture(scope="session")
def world(cli: Cli, home: Path) -> dict[str, str]:
    """Addresses by wallet name, after deployment, admissions, registration and key publication."""
    import_wallets(cli, home, CAST)
    cli("deploy", "--governor", "gov-a", "--governor", "gov-b", "--threshold", "2", wallet="gov-a")
    for member, role in (("lab", "lab"), ("hospital", "provider"), ("doctor", "provider")):
        proposed = cli("consortium", "propose", "admit", member, "--role", role, wallet="gov-a")
        proposal_id = proposed.stdout.split()[1].rstrip(":")
        cli("consortium", "approve", proposal_id, "--execute", wallet="gov-b")
    cli("patient", "register", wallet="patient")
    for name in ("lab", "hospital", "doctor"):
        cli("keys", "publish", wallet=name)
    cli("grant", "lab", "--scopes", "lab", "--access", "amend", "--for", "7d", wallet="patient")
    cli("grant", "hospital", "--scopes", "conditions", "--access", "amend", "--for", "7d", wallet="patient")
    return {name: cli.address(name) for name in CAST}


@pytest.fixture
def observation(tmp_path: Path) -> Path:
    path = tmp_path / "observation.json"
    path.write_text(json.dumps({
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]},
        "valueQuantity": {"value": 5.4, "unit": "mmol/L"},
    }))
    return path


@pytest.fixture
def lab_record(cli: Cli, world: dict[str, str], observation: Path) -> str:
    """A lab result the lab wrote for the patient; returns its record id."""
    return str(cli.json("record", "add", "patient", str(observation), wallet="lab")["recordId"])
