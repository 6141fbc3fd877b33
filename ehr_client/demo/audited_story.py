"""The second demo story: an audited read through key custodians, a revocation that bites, an erasure.

`run_audited_story` expects a deployed suite in which the doctor is an active provider and the
patient is registered; it admits three key custodians, serves them from threads of this process
(real HTTP on 127.0.0.1, SQLite files under `workdir`), tells the story on `console`, and stops
them however it ends. The authenticator app is simulated (`TotpDevice`). Health data is printed
once, on the doctor's screen.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import umbral_pre
from rich.console import Console
from rich.panel import Panel

from ehr_client.sharing.audited import AuditedSharing, Erasure
from ehr_client.chain.client import ChainClient, TxResult
from ehr_client.client import EHRClient, Identity
from ehr_client.crypto import x25519_public_key
from ehr_client.custodian.checks import KEY_CUSTODIAN_ROLE
from ehr_client.custodian.core import Custodian
from ehr_client.custodian.errors import CustodianRefused
from ehr_client.sharing.release import SessionBook
from ehr_client.sharing.remote import CustodianSet
from ehr_client.custodian.server import CustodianThread
from ehr_client.custodian.store import CustodianStore
from ehr_client.custodian.totp import TotpDevice
from ehr_client.errors import AccessDenied, EHRError, RecordErased
from ehr_client.records import Scope
from ehr_client.storage import BlobStore

DAY = 86_400
ADMIT = 0
CUSTODIANS = ("custodian-1", "custodian-2", "custodian-3")
GLUCOSE = {
    "resourceType": "Observation",
    "status": "final",
    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                              "code": "laboratory"}]}],
    "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4", "display": "Hemoglobin A1c"}]},
    "valueQuantity": {"value": 6.1, "unit": "%"},
}


@dataclass(frozen=True)
class AuditedStoryResult:
    record_id: bytes
    released_by: tuple[str, ...]
    erasure: Erasure


def _short(value: str | bytes) -> str:
    text = "0x" + value.hex() if isinstance(value, bytes) else value
    return f"{text[:8]}…{text[-4:]}"


def _with_umbral(identity: Identity) -> Identity:
    if identity.umbral:
        return identity
    return dataclasses.replace(identity, umbral={1: bytes(umbral_pre.SecretKey.random().to_be_bytes())})


def _admit(chain: ChainClient, proposer: Identity, approver: Identity, address: str) -> TxResult:
    consortium = chain.consortium.functions
    proposed = chain.transact(proposer.account, consortium.propose(ADMIT, address, KEY_CUSTODIAN_ROLE, DAY),
                              action="propose custodian")
    proposal = chain.events_in(proposed, "Consortium", "ProposalCreated")[0]["proposalId"]
    chain.transact(approver.account, consortium.approve(proposal), action="approve custodian")
    return chain.transact(approver.account, consortium.execute(proposal), action="admit custodian")


def run_audited_story(
    console: Console,
    chain: ChainClient,
    store: BlobStore,
    identities: Mapping[str, Identity],
    *,
    workdir: Path,
    threshold: int = 2,
) -> AuditedStoryResult:
    """Tell the audited-release story. `identities` needs "governor-a", "governor-b", "patient",
    "doctor" and "custodian-1".."custodian-3" (funded accounts; custodians are admitted here).
    Umbral keys are added to identities that lack one."""
    ids = {name: _with_umbral(identities[name]) for name in ("patient", "doctor")}
    step = _Steps(console)
    threads: list[CustodianThread] = []
    try:
        step("Three key custodians join the consortium (role KEY_CUSTODIAN, 2 of 3 governors)")
        for name in CUSTODIANS:
            who = identities[name]
            _admit(chain, identities["governor-a"], identities["governor-b"], who.address)
            public = x25519_public_key(who.current_key[1])
            chain.transact(who.account, chain.keys.functions.publishKey(1, public), action="publish custodian key")
            custodian = Custodian(who, chain, CustodianStore(workdir / "custodians" / f"{name}.db"))
            threads.append(CustodianThread(custodian))
            threads[-1].start()
            step.ok(f"{name} {_short(who.address)} admitted, key published, serving on {threads[-1].url}")
        urls = [t.url for t in threads]

        clients = {name: EHRClient(chain, store, ids[name], state_dir=workdir / "audited" / name) for name in ids}
        patient = AuditedSharing(clients["patient"], CustodianSet.connect(chain, urls), threshold=threshold)
        doctor = AuditedSharing(clients["doctor"], CustodianSet.connect(chain, urls), threshold=threshold,
                                sessions=SessionBook())

        step("Patient and doctor publish Umbral keys; the patient files a lab result")
        step.ok(f"patient Umbral key version {patient.publish_umbral_key()}, doctor version {doctor.publish_umbral_key()}")
        written = clients["patient"].add_record(clients["patient"].address, GLUCOSE)
        step.ok(f"record {_short(written.record_id)} anchored; its data key is sealed to the patient's Umbral key",
                written.tx)

        step(f"The patient grants the doctor LAB access: {threshold}-of-{len(urls)} key fragments to the custodians")
        delegation = patient.grant(doctor.address, int(Scope.LAB), expires_at=chain.now() + DAY)
        step.ok(f"grant on chain; {len(delegation.record_ids)} record(s), one sealed fragment per custodian", delegation.tx)

        step("The doctor enrolls a second factor (TOTP) and logs in")
        device = TotpDevice()
        device.add_all(doctor.enroll())
        doctor.open_sessions(device.code)
        step.ok(f"enrolled with {len(device.secrets)} custodians (authenticator simulated); sessions open")

        step("Audited read: access request on chain, then fragments from any 2 custodians")
        result = doctor.read_record(written.record_id)
        coding = result.resource()["code"]["coding"][0]
        console.print(Panel.fit(f"{coding['display']}: [bold]{result.resource()['valueQuantity']['value']} %[/]",
                                title="doctor's screen", border_style="cyan"))
        report = [r for r in patient.access_report() if r.record_id == written.record_id]
        released_by = report[-1].released_by
        step.ok(f"each custodian checked the chain itself; released by {', '.join(map(_short, released_by))}")

        threads[0].stop()
        doctor.read_record(written.record_id)
        step.ok("custodian-1 goes down: the next read still succeeds with the other two")

        step("The patient revokes: custodians refuse at once and shred their fragments")
        kept = chain.transact(clients["doctor"].identity.account,
                              chain.consent.functions.requestAccess(written.record_id), action="request access")
        step.ok("patient revokes the doctor", clients["patient"].revoke(doctor.address))
        _expect(step, "doctor's read", lambda: doctor.read_record(written.record_id), AccessDenied)
        for client in doctor.custodians.clients[1:]:
            session = doctor.sessions.get(client.address or "")
            if session is not None:
                replay = functools.partial(client.request_cfrag, clients["doctor"].identity.account,
                                           written.record_id, kept.tx_hash, session)
                _expect(step, f"replaying an earlier access request at {_short(client.address or client.url)}",
                        replay, CustodianRefused)
        _wait(lambda: all(t.custodian.store.count_fragments(record_id=written.record_id) == 0 for t in threads[1:]))
        step.ok("the running custodians saw AccessRevoked on chain and destroyed their fragments")

        step("Erasure (GDPR Art. 17): tombstone, shred, unpin, receipts signed by each custodian")
        erasure = patient.erase(written.record_id)
        step.ok(f"tombstoned; blob {_short(erasure.unpinned[0])} unpinned", erasure.tombstone_txs[0])
        for receipt in erasure.receipts:
            receipt.verify(patient.custodians.domain)
            step.ok(f"receipt from {_short(receipt.custodian)}: destroyed {receipt.destroyed}, remaining "
                    f"{receipt.remaining}, signature verified")
        for address in erasure.unavailable:
            step.note(f"{address} is down; it shreds when its poller sees the tombstone")
        _expect(step, "reading the erased record", lambda: clients["patient"].read_record(written.record_id),
                RecordErased)
        return AuditedStoryResult(written.record_id, released_by, erasure)
    finally:
        for thread in threads:
            thread.stop()


class _Steps:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.number = 0

    def __call__(self, title: str) -> None:
        self.number += 1
        self.console.print()
        self.console.rule(f"[bold]Audited release {self.number}. {title}", align="left")

    def ok(self, text: str, tx: TxResult | None = None) -> None:
        suffix = f"  [dim]tx {_short(tx.tx_hash)} · {tx.gas_used:,} gas[/]" if tx is not None else ""
        self.console.print(f"  [green]✓[/] {text}{suffix}")

    def note(self, text: str) -> None:
        self.console.print(f"    [dim]{text}[/]")


def _expect(step: _Steps, what: str, attempt: Callable[[], object], error: type[EHRError]) -> None:
    try:
        attempt()
    except error as exc:
        reason = getattr(exc, "reason", type(exc).__name__)
        step.console.print(f"  [red]✗ {what} refused[/] ({reason})")
        return
    raise EHRError(f"{what} was not refused: audited release is broken")


def _wait(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise EHRError("the custodians did not destroy the revoked fragments in time")
        time.sleep(0.1)
