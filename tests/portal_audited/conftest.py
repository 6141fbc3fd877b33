"""Fixtures for audited release through the portal: the CLI world (tests/portal), three key
custodians admitted and serving as real `ehr custodian serve` processes, the patient and the doctor
with published Umbral keys, and `ehr portal --custodian URL x3` as a real process.

Custodians' SQLite files outlive each test (the CLI world's chain is not reverted either): tests use
fresh records.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account

from ehr_client.cli._context import AppContext
from ehr_client.cli._settings import Settings
from ehr_client.client import EHRClient
from ehr_client.custodian.store import CustodianStore
from ehr_client.custodian.totp import TotpDevice
from ehr_client.sharing.audited import AuditedSharing
from ehr_client.sharing.remote import CustodianSet
from tests.cli.conftest import NETWORK, PASSWORD, Cli, cli_env, dev_key, observation  # noqa: F401
from tests.portal.wallet import TestWallet
from tests.portal.conftest import (  # noqa: F401  (fixtures)
    REPO,
    RELAYER,
    Portal,
    anvil,
    browser,
    cli,
    console,
    home,
    BROWSER_PATIENT_INDEX,
    open_page,
    page,
    start_portal,
    stop_portal,
    world,
)

CUSTODIANS = ("custodian-1", "custodian-2", "custodian-3")
THRESHOLD = 2
START_TIMEOUT = 60.0


@dataclass
class CustodianProcess:
    """`ehr --wallet NAME custodian serve` on a fixed port once started (so a restart keeps its URL)."""

    name: str
    env: dict[str, str]
    work: Path
    address: str
    port: int = 0
    url: str = ""
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        ready = self.work / f"{self.name}.ready.json"
        ready.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "ehr_client.cli", "--wallet", self.name, "custodian", "serve",
                "--port", str(self.port), "--ready-file", str(ready), "--poll-interval", "1.0"]
        with (self.work / f"{self.name}.log").open("ab") as log:
            self.process = subprocess.Popen(argv, env={**os.environ, **self.env, "PYTHONPATH": str(REPO)},
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while not ready.is_file():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"custodian {self.name} did not start: {(self.work / f'{self.name}.log').read_text()}")
            time.sleep(0.1)
        self.url = json.loads(ready.read_text())["url"]
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def info(self) -> dict[str, Any]:
        return dict(httpx.get(self.url + "/v1/info", timeout=10).json())


def _fund(rpc_url: str, address: str) -> None:
    httpx.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "anvil_setBalance",
                              "params": [address, hex(10**20)]}, timeout=10).raise_for_status()


@pytest.fixture(scope="session")
def custodians(cli: Cli, world: dict[str, str], home: Path, anvil: Any,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[CustodianProcess]]:
    """Three admitted key custodians with published X25519 keys, serving; Umbral keys for patient and doctor."""
    work = tmp_path_factory.mktemp("custodians")
    processes = []
    for name in CUSTODIANS:
        cli("keys", "new", wallet=name)
        address = cli.address(name)
        _fund(anvil.rpc_url, address)
        proposed = cli("consortium", "propose", "admit", name, "--role", "custodian", wallet="gov-a")
        cli("consortium", "approve", proposed.stdout.split()[1].rstrip(":"), "--execute", wallet="gov-b")
        cli("keys", "publish", wallet=name)
        processes.append(CustodianProcess(name, cli_env(home, anvil.rpc_url), work, address))
    for name in ("patient", "doctor"):
        cli("custodian", "umbral-key", wallet=name)
    try:
        for process in processes:
            process.start()
        yield processes
    finally:
        for process in processes:
            process.stop()


@pytest.fixture
def running(custodians: list[CustodianProcess]) -> Iterator[list[CustodianProcess]]:
    """The custodians; any a test stopped is started again (same port, same database) afterwards."""
    yield custodians
    for process in custodians:
        if not process.running:
            process.start()


@pytest.fixture(scope="session")
def audited_portal(custodians: list[CustodianProcess], home: Path, anvil: Any,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """The portal relaying with the hospital's wallet, forwarding to the three custodians (m = 2)."""
    urls = [arg for c in custodians for arg in ("--custodian", c.url)]
    running_portal = start_portal(home, cli_env(home, anvil.rpc_url), tmp_path_factory.mktemp("portal"), "--relayer",
                                  *urls, "--threshold", str(THRESHOLD), wallet=RELAYER)
    try:
        yield running_portal
    finally:
        stop_portal(running_portal.process)


@pytest.fixture(scope="session")
def client_of(home: Path, anvil: Any, world: dict[str, str],
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], EHRClient]]:
    """An EHRClient for a CLI wallet of the world (its keystore, the world's deployment and store)."""
    password_file = tmp_path_factory.mktemp("password") / "password"
    password_file.write_text(PASSWORD)
    contexts: dict[str, AppContext] = {}

    def make(wallet: str) -> EHRClient:
        if wallet not in contexts:
            contexts[wallet] = AppContext(Settings(network=NETWORK, rpc=anvil.rpc_url, home=home, wallet=wallet,
                                                   password_file=password_file))
        return contexts[wallet].client()

    try:
        yield make
    finally:
        for context in contexts.values():
            context.close()


@pytest.fixture
def lab_result(custodians: list[CustodianProcess], cli: Cli, observation: Path) -> bytes:  # noqa: F811
    """A lab result the lab wrote for the CLI patient after their Umbral key was published (so it
    carries a capsule); returns its record id."""
    return bytes.fromhex(str(cli.json("record", "add", "patient", str(observation), wallet="lab")["recordId"])[2:])


class HookedWallet(TestWallet):
    """The test wallet, with a hook a test sets to act (stop a custodian, say) when the page asks
    for a signature of one EIP-712 primary type: a fault at an exact step of the page's work."""

    __test__ = False

    def __init__(self, private_key: str, rpc_url: str) -> None:
        super().__init__(private_key, rpc_url)
        self.on_sign: dict[str, Callable[[dict[str, Any]], None]] = {}
        self.signed_kinds: list[str] = []

    def _answer(self, method: str, params: list[Any]) -> Any:
        if method == "eth_signTypedData_v4":
            document = json.loads(params[1])
            self.signed_kinds.append(document["primaryType"])
            hook = self.on_sign.pop(document["primaryType"], None)
            if hook is not None:
                hook(document)
        return super()._answer(method, params)


@pytest.fixture(scope="session")
def patient_wallet(anvil: Any) -> HookedWallet:
    """The browser patient's wallet (a funded dev account no CLI wallet uses), with a signing hook."""
    return HookedWallet(dev_key(BROWSER_PATIENT_INDEX), anvil.rpc_url)


def fragments_at(custodian: CustodianProcess, home: Path, record_id: bytes) -> int:
    store = CustodianStore(home / "custodian" / f"{custodian.name}.db")
    try:
        return store.count_fragments(record_id=record_id)
    finally:
        store.close()


@pytest.fixture(scope="session")
def doctor_reads(custodians: list[CustodianProcess], client_of: Callable[[str], EHRClient]) -> AuditedSharing:
    """The doctor, enrolled (TOTP) at every custodian with sessions open: reads through the custodians.
    Enrolment happens once per grantee and custodian, so every test of the session shares this."""
    doctor = client_of("doctor")
    sharing = AuditedSharing(doctor, CustodianSet.connect(doctor.chain, [c.url for c in custodians]),
                             threshold=THRESHOLD)
    device = TotpDevice()
    device.add_all(sharing.enroll())
    sharing.open_sessions(device.code)
    return sharing


@pytest.fixture
def fresh_patient(browser: Any, anvil: Any, console: list[str]) -> Iterator[tuple[Any, HookedWallet]]:
    """A page whose wallet is a new, funded account: a patient who has never registered."""
    account = Account.create()
    _fund(anvil.rpc_url, account.address)
    wallet = HookedWallet("0x" + bytes(account.key).hex(), anvil.rpc_url)
    opened = open_page(browser, wallet, console)
    try:
        yield opened, wallet
    finally:
        opened.context.close()
