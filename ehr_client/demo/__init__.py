"""`ehr demo` (and `make demo`): the whole story on a throwaway local chain, narrated.

A consortium of two governors admits a hospital, its doctor and a lab; a patient registers; the
lab and the hospital write encrypted FHIR records under amend grants; the patient signs an EIP-712
read grant for the doctor that the hospital relays; the doctor reads and verifies; a stranger is
refused; the patient revokes and the doctor is refused too; the audit trail shows it all.

Everything runs on its own Anvil (a free loopback port), or with ``chain="consortium"`` a geth Clique
network of four validators and an RPC node (period 1 s, writes confirmed one block deep), and an
embedded LocalStore in a temporary directory, or with ``ipfs=True`` a Kubo daemon on its own
temporary repo. All are stopped, and the directory removed, however the demo ends (error, Ctrl-C or
SIGTERM). Health data is printed
once, on the doctor's screen, and never logged.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, cast

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from ehr_client.chain.client import ChainClient, TxResult, deploy_suite
from ehr_client.chain import governance as gov
from ehr_client.text import short
from ehr_client.demo.audited_story import run_audited_story
from ehr_client.demo.claims_story import run_claims_story
from ehr_client.audit import MonitorConfig, WorkingHours, scan_alerts
from ehr_client.demo.audit_table import audit_table
from ehr_client.client import EHRClient, Identity, SignedConsent
from ehr_client.crypto import generate_x25519_keypair
from ehr_client.errors import AccessDenied, ConfigError, EHRError
from ehr_client.dev.clique_watch import Supervisor
from ehr_client.dev.geth import CliqueNetwork
from ehr_client.dev.node import AnvilNode, dev_account
from ehr_client.records import Scope
from ehr_client.storage import BlobStore, IpfsStore, LocalStore
from ehr_client.storage.kubo import KuboDaemon

DEMO_STORE_ENV = "EHR_DEMO_STORE"
DEMO_CHAIN_ENV = "EHR_DEMO_CHAIN"
CHAINS = ("anvil", "consortium")
DEV_ACCOUNTS = 10  # the cast, then custodians 7..9
DAY = 86_400
CAST = ("governor-a", "governor-b", "hospital", "doctor", "lab", "patient", "stranger")

OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "status": "final",
    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                              "code": "laboratory"}]}],
    "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]},
    "valueQuantity": {"value": 5.4, "unit": "mmol/L"},
}
CONDITION: dict[str, Any] = {
    "resourceType": "Condition",
    "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                   "code": "active"}]},
    "code": {"text": "Type 2 diabetes"},
    "subject": {"reference": "Patient/example"},
}


def store_from_env() -> bool:
    """Whether EHR_DEMO_STORE asks for IPFS."""
    return os.environ.get(DEMO_STORE_ENV, "").strip().lower() == "ipfs"


def chain_from_env() -> str:
    """EHR_DEMO_CHAIN: "anvil" (default) or "consortium"."""
    chosen = os.environ.get(DEMO_CHAIN_ENV, "").strip().lower() or "anvil"
    if chosen not in CHAINS:
        raise ConfigError(f"{DEMO_CHAIN_ENV}={chosen!r}: use one of {', '.join(CHAINS)}")
    return chosen


def dev_identity(index: int) -> Identity:
    """Anvil dev-mnemonic account `index` (funded on a fresh node) with a fresh X25519 key."""
    return Identity.from_private_keys(dev_account(index).key, {1: generate_x25519_keypair().private_key})


class _Narrator:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.step_number = 0
        self.gas_total = 0
        self.tx_count = 0

    def step(self, title: str) -> None:
        self.step_number += 1
        self.console.print()
        self.console.rule(f"[bold]{self.step_number}. {title}", align="left")

    def ok(self, text: str, tx: TxResult | None = None) -> None:
        suffix = ""
        if tx is not None:
            self.gas_total += tx.gas_used
            self.tx_count += 1
            suffix = f"  [dim]tx {short(tx.tx_hash)} · {tx.gas_used:,} gas[/]"
        self.console.print(f"  [green]✓[/] {text}{suffix}")

    def refused(self, who: str, exc: AccessDenied, labels: dict[str, str]) -> None:
        message = str(exc)
        for address, label in labels.items():
            message = message.replace(address, label)
        message = re.sub(r"0x[0-9a-f]{64}", lambda m: short(m.group(0)), message)
        self.console.print(f"  [red]✗ {who} refused[/] (AccessDenied): {escape(message)}")

    def note(self, text: str) -> None:
        self.console.print(f"    [dim]{text}[/]")


def _sigterm_as_interrupt() -> Callable[[], None]:
    """Turn SIGTERM into KeyboardInterrupt so `finally` blocks stop the node; returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


def run_demo(*, ipfs: bool = False, audited: bool = True, claims: bool = True, chain: str = "anvil",
             console: Console | None = None) -> None:
    """Start a chain (and Kubo), tell the story (and the audited-release and claims stories), always stop
    what was started."""
    if chain not in CHAINS:
        raise ConfigError(f"unknown demo chain {chain!r}: use one of {', '.join(CHAINS)}")
    if console is None:
        console = Console(highlight=False)
        if not console.is_terminal:
            console = Console(highlight=False, width=120)  # pipes and logs: wide enough for a row per line
    workdir = Path(tempfile.mkdtemp(prefix="ehr-demo-"))
    restore_signal = _sigterm_as_interrupt()
    node: AnvilNode | None = None
    network: CliqueNetwork | None = None
    supervisor: Supervisor | None = None
    kubo: KuboDaemon | None = None
    store: BlobStore | None = None
    try:
        if chain == "consortium":
            console.print("[bold]EHR demo[/]: patient-controlled, encrypted health records on a consortium chain")
            network = _start_consortium(workdir / "network")
            supervisor = Supervisor(network).start()  # a stalled head or a stuck transaction gets unblocked
            for name, geth in network.nodes.items():
                role = f"validator {short(geth.spec.address)}" if geth.spec.address else "rpc node"
                console.print(f"  geth {name} pid {geth.pid} at {geth.rpc_url} ({role})")
            rpc_url, confirmations = network.rpc_url(), 1
        else:
            console.print("[bold]EHR demo[/]: patient-controlled, encrypted health records on a local chain")
            node = AnvilNode(log_path=workdir / "anvil.log")
            node.start()
            console.print(f"  anvil pid {node.pid} at {node.rpc_url}")
            rpc_url, confirmations = node.rpc_url, 0
        if ipfs:
            kubo = KuboDaemon(workdir / "ipfs")
            kubo.start()
            store = IpfsStore(kubo.api_url)
            console.print(f"  kubo pid {kubo.pid} at {kubo.api_url} (IpfsStore, offline, loopback only)")
        else:
            store = LocalStore(workdir / "store")
            console.print(f"  embedded LocalStore in {store.root}")
        client, ids = _story(_Narrator(console), rpc_url, store, workdir, confirmations=confirmations)
        if audited:
            console.rule("[bold]Second story: audited key release through custodians")
            custodians = {f"custodian-{i}": dev_identity(6 + i) for i in (1, 2, 3)}
            run_audited_story(console, client, store, {**ids, **custodians}, workdir=workdir)
        if claims:
            console.rule("[bold]Third story: prove a lab result is in range without showing it")
            run_claims_story(console, client, store, ids, workdir=workdir)
    finally:
        if isinstance(store, IpfsStore):
            store.close()
        if kubo is not None:
            kubo.stop()
            console.print("  kubo stopped")
        if node is not None and node.pid is not None:
            pid = node.pid
            node.stop()
            console.print(f"  anvil stopped (pid {pid})")
        if supervisor is not None:
            supervisor.stop()
        if network is not None:
            pids = [geth.pid for geth in network.nodes.values() if geth.pid is not None]
            network.stop()
            console.print(f"  geth nodes stopped (pids {', '.join(map(str, pids))})")
        shutil.rmtree(workdir, ignore_errors=True)
        restore_signal()


def _start_consortium(root: Path) -> CliqueNetwork:
    """Four validators and one RPC node, the demo's accounts funded in the genesis."""
    funded = {dev_identity(index).address: 10**24 for index in range(DEV_ACCOUNTS)}
    network = CliqueNetwork.create(root, validators=4, rpc_nodes=1, period=1, alloc=funded)
    try:
        network.start()
        network.wait_for_block(2, timeout=60)
        # Every node peered and the RPC node caught up before anything is sent to it: a transaction
        # given to a node still at genesis was once never mined (CI, a loaded machine).
        network.wait_for_peers(timeout=60)
        network.wait_for_sync(timeout=60)
    except BaseException:
        network.stop()
        raise
    return network


def _story(say: _Narrator, rpc_url: str, store: BlobStore, workdir: Path, *,
           confirmations: int = 0) -> tuple[ChainClient, dict[str, Identity]]:
    ids = {name: dev_identity(index) for index, name in enumerate(CAST)}
    labels = {identity.address: name for name, identity in ids.items()}

    say.step("Deploy the contracts")
    deployment = deploy_suite(rpc_url, ids["governor-a"].account, network="demo",
                              governors=[ids["governor-a"].address, ids["governor-b"].address], threshold=2,
                              confirmations=confirmations)
    chain = ChainClient(rpc_url, deployment, confirmations=confirmations)
    for name, address in deployment.contracts.items():
        say.ok(f"{name:<15} {address}")

    say.step("The consortium admits members (each needs both governors)")
    for member, role in (("hospital", "provider"), ("lab", "lab"), ("doctor", "provider")):
        proposed = gov.propose(chain, ids["governor-a"].account, "admit", ids[member].address, gov.ROLES[role])
        say.ok(f"governor-a proposes admitting {member} as {role.upper()} (proposal {proposed.proposal_id})", proposed.tx)
        say.ok("governor-b approves", gov.approve(chain, ids["governor-b"].account, proposed.proposal_id))
        say.ok(f"{member} admitted", gov.execute(chain, ids["governor-b"].account, proposed.proposal_id))

    people = {name: EHRClient(chain, store, ids[name], state_dir=workdir / "state" / name)
              for name in ("patient", "hospital", "doctor", "lab", "stranger")}
    patient, hospital, doctor, lab = (people[n] for n in ("patient", "hospital", "doctor", "lab"))

    say.step("The patient registers; everyone publishes an X25519 encryption key")
    say.ok(f"patient {patient.address} registered", patient.register_patient())
    for name in ("patient", "hospital", "doctor", "lab"):
        version = people[name].publish_key()
        say.ok(f"{name} published key version {version}")

    say.step("The lab adds a FHIR Observation (after the patient grants amend on LAB)")
    now = chain.now()
    granted = patient.grant(lab.address, int(Scope.LAB), access="amend", expires_at=now + DAY, share_keys=False)
    say.ok("patient grants lab amend on LAB for 24 h", granted.tx)
    observation = lab.add_record(patient.address, OBSERVATION)
    say.ok(f"lab anchors record {short(observation.record_id)}", observation.tx)
    say.note(f"on chain: sha-256 {short(observation.content_hash)} and CID {short(observation.cid, keep=12)} only; "
             "the data is AES-256-GCM ciphertext in the store")

    say.step("The hospital adds a Condition (after amend on CONDITIONS)")
    granted = patient.grant(hospital.address, int(Scope.CONDITIONS), access="amend", expires_at=now + DAY,
                            share_keys=False)
    say.ok("patient grants hospital amend on CONDITIONS for 24 h", granted.tx)
    condition = hospital.add_record(patient.address, CONDITION)
    say.ok(f"hospital anchors record {short(condition.record_id)}", condition.tx)

    say.step("The patient signs a read grant (EIP-712) for the doctor; the hospital relays it")
    now = chain.now()
    signed = patient.sign_grant(doctor.address, int(Scope.LAB), expires_at=now + DAY, deadline=now + 3600)
    domain, message = signed.typed_data["domain"], signed.typed_data["message"]
    say.ok(f"patient signs Grant(doctor, LAB, read, 24 h) off chain, no gas: nonce {message['nonce']}, "
           f"chainId {domain['chainId']}, contract {short(domain['verifyingContract'])}")
    say.note(f"signature {short(signed.signature)}; no keys travel with it: a signature can still be voided")
    relayed = SignedConsent.from_json(signed.to_json())  # what travels to the hospital
    say.ok("hospital relays the signed grant (it pays the gas and cannot alter it)", hospital.relay_grant(relayed))
    key_share, shared = patient.share_keys(doctor.address, int(Scope.LAB))
    say.ok(f"grant in force: the patient seals {shared} record key(s) to the doctor in key share "
           f"{short(key_share, keep=12)}")

    say.step("The doctor reads and verifies the lab result")
    result = doctor.read_record(observation.record_id, key_share=key_share)
    say.ok("chain says yes; the read is recorded on chain; hash checked; decrypted with the key share")
    resource = result.resource()
    coding = resource["code"]["coding"][0]
    quantity = resource["valueQuantity"]
    say.console.print(Panel.fit(
        f"{coding['display']} (LOINC {coding['code']}): [bold]{quantity['value']} {quantity['unit']}[/]",
        title="doctor's screen", border_style="cyan"))
    verified = doctor.verify_record(observation.record_id)
    if not verified.ok:
        raise EHRError(f"verification failed: {verified.problem}")
    say.ok("stored ciphertext matches the hash anchored on chain")

    say.step("A stranger tries to read it")
    _expect_refusal(say, labels, "stranger", lambda: people["stranger"].read_record(observation.record_id,
                                                                             key_share=key_share))

    say.step("The patient revokes; the doctor is refused")
    say.ok("patient revokes the doctor's access", patient.revoke(doctor.address))
    _expect_refusal(say, labels, "doctor", lambda: doctor.read_record(observation.record_id, key_share=key_share))

    say.step("The revoked doctor's modified client sends the access request anyway")
    attempt = chain.consent.functions.requestAccess(observation.record_id).build_transaction(cast(Any, {
        "from": doctor.address, "gas": 200_000, "chainId": chain.chain_id,
        "nonce": chain.w3.eth.get_transaction_count(cast(Any, doctor.address), "pending")}))
    sent = chain.w3.eth.send_raw_transaction(ids["doctor"].account.sign_transaction(cast(Any, attempt)).raw_transaction)
    receipt = chain.w3.eth.wait_for_transaction_receipt(sent)
    if receipt["status"] != 0:
        raise EHRError("the chain accepted an access request after revocation: consent enforcement is broken")
    say.refused("doctor", AccessDenied(f"the chain reverted it (tx {short(sent.to_0x_hex())}); "
                                       "reverts leave no event, but the monitor reads receipts"), labels)

    say.step("Audit trail: who did what, when")
    say.console.print(audit_table(patient.audit_trail(patient.address), names=labels))
    alerts = scan_alerts(chain, state_dir=workdir / "audit",
                         config=MonitorConfig(working_hours=WorkingHours(enabled=False)))
    if not alerts:
        raise EHRError("the monitor raised no alert for the reverted access request")
    say.console.print(f"[bold red]monitor alerts[/] ({len(alerts)}):")
    for alert in alerts:
        say.console.print(f"  {escape(alert.summary())}")
    say.console.print(f"\n[bold green]Done.[/] {say.tx_count} transactions shown, {say.gas_total:,} gas in total.")
    return chain, ids


def _expect_refusal(say: _Narrator, labels: dict[str, str], who: str, attempt: Callable[[], object]) -> None:
    try:
        attempt()
    except AccessDenied as exc:
        say.refused(who, exc, labels)
        return
    raise EHRError(f"the {who} was not refused: consent enforcement is broken")
