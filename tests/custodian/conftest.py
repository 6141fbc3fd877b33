"""Three real custodian processes (m = 2) on loopback, against the suite deployed on Ape's Anvil.

Once per test package: a suite is deployed for these tests alone (so Ape's revert at the end of the
package leaves no other test a dangling deployment), members are admitted, three key custodians
(role 5) get a keystore and a SQLite file each and run `python -m ehr_client.cli ... custodian serve` as a
subprocess on a free 127.0.0.1 port. The patient and the grantees publish Umbral keys, the
grantees enrol their second factor with every custodian and open MFA sessions.

Ape reverts the chain after each test, the custodians' SQLite files do not: tests therefore use
fresh record ids, and never reuse a TOTP code of a grantee that already opened a session.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import umbral_pre
from eth_account import Account

from ehr_client.sharing.audited import AuditedSharing
from ehr_client.chain.client import ChainClient, deploy_suite
from ehr_client.client import EHRClient, Identity
from ehr_client.custodian import messages
from ehr_client.sharing.release import SessionBook
from ehr_client.sharing.remote import CustodianSet
from ehr_client.custodian.store import CustodianStore
from ehr_client.custodian.totp import TotpDevice
from ehr_client.keys import Keystore
from ehr_client.storage import LocalStore
from tests.client.conftest import ids, rpc_url  # noqa: F401  (fixtures)
from tests.constants import ACTION, DAY, ROLE

PASSWORD = "custodian-test-password"
THRESHOLD = 2
MAX_REQUEST_BLOCKS = 20
GRANTEES = ("doctor", "hospital", "insurer", "lab")
START_TIMEOUT = 60.0


class CustodianProcess:
    """One `ehr custodian serve` subprocess with its own home, keystore and SQLite file."""

    def __init__(self, name: str, home: Path, rpc_url: str, deployments: Path, network: str,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.name = name
        self.extra_args = extra_args
        self.home = home
        self.db = home / "custodian.db"
        self.ready_file = home / "ready.json"
        self.rpc_url = rpc_url
        self.deployments = deployments
        self.network = network
        self.port = 0
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        self.ready_file.unlink(missing_ok=True)
        env = {**os.environ, "EHR_PASSWORD": PASSWORD, "EHR_DEPLOYMENTS_DIR": str(self.deployments)}
        args = [sys.executable, "-m", "ehr_client.cli", "--network", self.network, "--rpc", self.rpc_url,
                "--home", str(self.home), "--wallet", "custodian", "custodian", "serve", "--db", str(self.db),
                "--host", "127.0.0.1", "--port", str(self.port), "--ready-file", str(self.ready_file),
                "--poll-interval", "1.0", "--max-request-blocks", str(MAX_REQUEST_BLOCKS), *self.extra_args]
        log = (self.home / "server.log").open("ab")
        self.proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while not self.ready_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"custodian {self.name} did not start:\n" + (self.home / "server.log").read_text())
            time.sleep(0.05)
        self.url = json.loads(self.ready_file.read_text())["url"]
        self.port = int(self.url.rsplit(":", 1)[1])
        while True:
            try:
                if httpx.get(self.url + "/v1/info", timeout=2).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"custodian {self.name} does not answer at {self.url}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown; SQLite (WAL) must survive it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def store(self) -> CustodianStore:
        return CustodianStore(self.db)


def _admit(chain: ChainClient, ids: dict[str, Identity], address: str, role: str) -> None:
    consortium = chain.consortium.functions
    result = chain.transact(ids["gov_a"].account, consortium.propose(ACTION["admit"], address, ROLE[role], DAY),
                            action="propose")
    proposal = chain.events_in(result, "Consortium", "ProposalCreated")[0]["proposalId"]
    chain.transact(ids["gov_b"].account, consortium.approve(proposal), action="approve")
    chain.transact(ids["gov_b"].account, consortium.execute(proposal), action="execute")


def _custodian_home(root: Path, wallet_key: bytes, chain: ChainClient) -> tuple[Path, str]:
    """A keystore (wallet + X25519) under root/keys/custodian, its key published on chain."""
    keystore = Keystore(root / "keys" / "custodian", scrypt_n=2**4)
    info = keystore.import_wallet("custodian", wallet_key, PASSWORD)
    key = keystore.generate_encryption_key("x25519", password=PASSWORD)
    account = Account.from_key(wallet_key)
    chain.transact(account, chain.keys.functions.publishKey(1, key.public_key), action="publish custodian key")
    assert info.address == account.address
    return root, account.address


@dataclasses.dataclass
class Env:
    """Everything a custodian test needs."""

    chain: ChainClient
    store: LocalStore
    custodians: list[CustodianProcess]
    identities: dict[str, Identity]
    clients: dict[str, EHRClient]
    devices: dict[str, TotpDevice]
    sessions: dict[str, SessionBook]
    state: Path

    @property
    def urls(self) -> list[str]:
        return [c.url for c in self.custodians]

    def sharing(self, name: str) -> AuditedSharing:
        """A fresh AuditedSharing for `name`, with the grantee's module-wide sessions."""
        custodian_set = CustodianSet.connect(self.chain, self.urls, timeout=3.0)
        return AuditedSharing(self.clients[name], custodian_set, threshold=THRESHOLD,
                              sessions=self.sessions.setdefault(name, SessionBook()))


def _deploy(rpc_url: str, ids: dict[str, Identity], network: str) -> ChainClient:
    governors = [ids[g].address for g in ("gov_a", "gov_b", "gov_c")]
    deployment = deploy_suite(rpc_url, ids["gov_a"].account, network=network, governors=governors, threshold=2)
    chain = ChainClient(rpc_url, deployment)
    for name, role in [("hospital", "provider"), ("doctor", "provider"), ("lab", "lab"), ("insurer", "insurer"),
                       ("custodian", "custodian")]:
        _admit(chain, ids, ids[name].address, role)
    return chain


@pytest.fixture(scope="package")
def env(ids: dict[str, Identity], rpc_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("custodians")
    deployments = root / "deployments"
    network = "custodian-test"
    suite = _deploy(rpc_url, ids, network)
    suite.deployment.save(deployments / f"{network}.json")

    keys = [bytes(ids["custodian"].account.key)]
    for _ in range(2):
        extra = Account.create()
        suite.w3.provider.make_request("anvil_setBalance", [extra.address, hex(10**20)])  # type: ignore[arg-type]
        _admit(suite, ids, extra.address, "custodian")
        keys.append(bytes(extra.key))
    processes = []
    for i, key in enumerate(keys):
        home, _ = _custodian_home(root / f"c{i}", key, suite)
        processes.append(CustodianProcess(f"c{i}", home, rpc_url, deployments, network))

    store = LocalStore(root / "store")
    identities = {
        name: dataclasses.replace(ids[name], umbral={1: bytes(umbral_pre.SecretKey.random().to_be_bytes())})
        for name in ("patient", "stranger", *GRANTEES)
    }
    clients = {name: EHRClient(suite, store, identity, state_dir=root / "state" / name)
               for name, identity in identities.items()}
    clients["patient"].register_patient()
    for client in clients.values():
        client.publish_key()
        client.publish_umbral_key()

    try:
        _start_all(processes)
        environment = Env(suite, store, processes, identities, clients, {}, {}, root / "state")
        for name in GRANTEES:
            device = TotpDevice()
            device.add_all(environment.sharing(name).enroll())
            environment.devices[name] = device
        for name in ("doctor", "hospital"):
            environment.sharing(name).open_sessions(environment.devices[name].code)
        yield environment
    finally:
        for process in processes:
            process.stop()


def _start_all(processes: list[CustodianProcess]) -> None:
    """Start the servers side by side (each takes a few seconds to import and check the chain)."""
    import threading

    errors: list[BaseException] = []

    def start(process: CustodianProcess) -> None:
        try:
            process.start()
        except BaseException as exc:  # re-raised below, in the fixture's thread
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(p,)) for p in processes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


@pytest.fixture
def running(env: Env) -> Iterator[list[CustodianProcess]]:
    """The custodians; any a test stopped is started again (same port, same database) afterwards."""
    yield env.custodians
    stopped = [c for c in env.custodians if not c.running]
    if stopped:
        _start_all(stopped)


@pytest.fixture
def fhir_record(env: Env, observation: dict[str, Any]) -> Callable[[], bytes]:
    """The patient writes the test's lab Observation for themself; returns its record id."""

    def write() -> bytes:
        return env.clients["patient"].add_record(env.clients["patient"].address, observation).record_id

    return write


def releases(env: Env, record_id: bytes) -> list[int]:
    """How many fragments of `record_id` each custodian's SQLite log says it released."""
    counts = []
    for custodian in env.custodians:
        store = custodian.store()
        try:
            counts.append(len(store.releases(record_id=record_id)))
        finally:
            store.close()
    return counts


def fragments(env: Env, record_id: bytes) -> list[int]:
    """How many fragments of `record_id` each custodian holds."""
    counts = []
    for custodian in env.custodians:
        store = custodian.store()
        try:
            counts.append(store.count_fragments(record_id=record_id))
        finally:
            store.close()
    return counts


def wait_until(condition: Callable[[], bool], *, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def custodian_address(env: Env, index: int) -> str:
    return str(httpx.get(env.custodians[index].url + "/v1/info", timeout=3).json()["custodian"])


def key_request(env: Env, index: int, grantee: str, record_id: bytes, access_tx: str, *,
                signer: Identity | None = None, session: str | None = None, addressed_to: str | None = None,
                issued_at: int | None = None) -> dict[str, Any]:
    """A KeyRequest body for custodian `index`, signed by `signer` (default: the grantee itself)."""
    identity = env.identities[grantee]
    to = addressed_to or custodian_address(env, index)
    token = session
    if token is None:
        live = env.sessions.get(grantee, SessionBook()).get(to)
        token = live.token if live else "0x" + "11" * 32
    message = {
        "custodian": to, "grantee": identity.address, "recordId": "0x" + record_id.hex(), "accessTx": access_tx,
        "session": "0x" + hashlib.sha256(bytes.fromhex(token[2:])).hexdigest(),
        "issuedAt": int(time.time()) if issued_at is None else issued_at, "nonce": messages.new_nonce(),
    }
    domain = messages.CustodianDomain(env.chain.chain_id, env.chain.consent.address)
    signature = messages.sign(bytes((signer or identity).account.key), domain, "KeyRequest", message)
    return {"message": message, "signature": signature, "session": token}


def post(env: Env, index: int, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(env.custodians[index].url + path, json=body, timeout=10)


def request_access(env: Env, grantee: str, record_id: bytes) -> str:
    """The grantee's on-chain access request; returns its transaction hash."""
    client = env.clients[grantee]
    return client.chain.transact(client.identity.account, client.chain.consent.functions.requestAccess(record_id),
                                 action="request access").tx_hash


@pytest.fixture
def observation() -> dict[str, Any]:
    """A lab Observation, distinct per test: record ids are derived from the content, and the custodian
    processes outlive the chain snapshots Ape reverts between tests, so a repeated id (and so a
    repeated access-request transaction) would meet an earlier test's fragments."""
    return {
        "resourceType": "Observation",
        "status": "final",
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"}],
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]},
        "valueQuantity": {"value": 5.40, "unit": "mmol/L"},
    }
