"""Building a large chain for `bench.scale`: many patients, many records in batches, grants and reads mixed in.

Patients are derived from a fixed seed (no HD derivation), funded with `anvil_setBalance` and
onboarded by a pool of threads (register, publish an X25519 key, grant their writer amend rights on
LAB records), each thread with its own `ChainClient`. A few members write: patient ``i`` belongs to
writer ``i % len(WRITERS)``; every writer runs its own `BatchWriter` in its own thread (the fsynced
blob and journal writes wait on the disk, not the interpreter). One visit is one batch of `panel`
Observations for one patient, patients visited in turn. After each step a few patients grant the
reader, and each writer reads back one record of its step (an access request on chain).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from eth_account import Account

from bench._records import observation
from bench._world import World
from ehr_client.batch import BatchItem, BatchWriter
from ehr_client.chain.calls import rpc_batch
from ehr_client.chain.client import ChainClient
from ehr_client.chain.types import Access, KeyType
from ehr_client.client import EHRClient, Identity
from ehr_client.crypto import generate_x25519_keypair, x25519_public_key
from ehr_client.records import Scope
from ehr_client.records.purpose import DEFAULT_PURPOSE, parse_purpose

WRITERS = ("lab", "hospital", "second_grantee")
READER = "doctor"
FOCUS = "patient"
HISTORY = "patient2"  # its full history is read at every checkpoint: the reads stay out of FOCUS's audit
YEAR = 365 * 86_400
SEED = b"ehr-bench-scale/patient/"


def seeded_identity(index: int) -> Identity:
    key = hashlib.sha256(SEED + index.to_bytes(4, "big")).digest()
    return Identity(Account.from_key(key), {1: generate_x25519_keypair().private_key})


@dataclass
class ScaleChain:
    """The growing chain: who the patients are, how many records are anchored, whose turn is next."""

    world: World
    patients: list[Identity]
    panel: int
    threads: int
    records: int = 0
    visits: int = 0
    step_seconds: float = 0.0
    mixed: int = 0

    def chain_client(self) -> ChainClient:
        return ChainClient(self.world.rpc_url, self.world.chain.deployment, timeout=120)

    def writer(self, name: str, chain: ChainClient | None = None) -> EHRClient:
        return self.world.client(name, "scale", chain=chain)

    def writer_of(self, patient: int) -> str:
        return WRITERS[patient % len(WRITERS)]

    # --- onboarding -------------------------------------------------------------------------------

    def onboard(self, log: Callable[[str], None]) -> float:
        """Fund, register, publish keys and grant writers for every patient; the focus patient too."""
        start = time.perf_counter()
        chain = self.world.chain
        for first in range(0, len(self.patients), 200):
            rpc_batch(chain, [("anvil_setBalance", [p.address, hex(10**20)])
                              for p in self.patients[first:first + 200]])
        expires = chain.now() + YEAR
        purpose = parse_purpose(DEFAULT_PURPOSE).word
        chunks = [list(range(len(self.patients)))[k::self.threads] for k in range(self.threads)]

        def onboard_chunk(indices: list[int]) -> None:
            client = self.chain_client()
            for i in indices:
                account, key = self.patients[i].account, self.patients[i].current_key[1]
                writer = self.world.ids[self.writer_of(i)].address
                client.transact(account, client.records.functions.registerPatient(), action="register patient")
                client.transact(account, client.keys.functions.publishKey(KeyType.X25519, x25519_public_key(key)),
                                action="publish key")
                client.transact(account, client.consent.functions.grant(writer, int(Scope.LAB), Access.AMEND, expires,
                                                                        purpose), action="grant writer")

        with ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(onboard_chunk, chunks))
        log(f"onboarded {len(self.patients)} patients in {time.perf_counter() - start:.1f}s")
        for name in (FOCUS, HISTORY):
            own = self.world.client(name, "scale")
            own.register_patient()
            own.publish_key()
            own.grant(self.world.ids[WRITERS[0]].address, int(Scope.LAB), access="amend", expires_at=expires,
                      share_keys=False)
        return time.perf_counter() - start

    def write_focus(self, count: int) -> None:
        """The measured patients' own records, written once: what list, audit and history reads cover."""
        lab = self.writer(WRITERS[0])
        for offset, name in ((900_000, FOCUS), (950_000, HISTORY)):
            address = self.world.ids[name].address
            BatchWriter(lab, batch_size=self.panel).write(
                BatchItem(address, observation(offset + i)) for i in range(count))
            self.records += count

    # --- growing ----------------------------------------------------------------------------------

    def _visits(self, count: int) -> Iterator[int]:
        for _ in range(count):
            yield self.visits % len(self.patients)
            self.visits += 1

    def grow(self, records: int) -> None:
        """Anchor `records` more records (whole visits of `panel`), then mix in grants and reads."""
        plan: dict[str, list[BatchItem]] = {name: [] for name in WRITERS}
        for patient in self._visits(max(1, records // self.panel)):
            address = self.patients[patient].address
            plan[self.writer_of(patient)] += [BatchItem(address, observation(self.records + n))
                                              for n in range(self.panel)]
            self.records += self.panel
        start = time.perf_counter()
        read_back: dict[str, bytes] = {}

        def write(name: str) -> None:
            items = plan[name]
            if not items:
                return
            client = self.writer(name, self.chain_client())
            summary = BatchWriter(client, batch_size=self.panel).write(items)
            if len(summary.record_ids) != len(items):
                raise RuntimeError(f"{name} anchored {len(summary.record_ids)} of {len(items)} records")
            read_back[name] = summary.record_ids[-1]

        with ThreadPoolExecutor(len(WRITERS)) as pool:
            list(pool.map(write, WRITERS))
        self.step_seconds = time.perf_counter() - start
        self._mix(read_back, grants=max(1, records // 500))

    def _mix(self, read_back: dict[str, bytes], *, grants: int) -> None:
        chain = self.world.chain
        reader = self.world.ids[READER].address
        expires = chain.now() + YEAR
        purpose = parse_purpose(DEFAULT_PURPOSE).word
        for k in range(grants):
            patient = self.patients[(self.visits + k * 7) % len(self.patients)]
            chain.transact(patient.account, chain.consent.functions.grant(reader, int(Scope.LAB), Access.READ, expires,
                                                                          purpose), action="grant reader")
        for name, record_id in read_back.items():
            self.writer(name).read_record(record_id)
        self.mixed += grants + len(read_back)

    def probe(self) -> int:
        """One more visit (one anchor of `panel` records) and one grant: the blocks an incremental sync
        and a monitor then take in. Returns how many blocks they added."""
        before = self.world.chain.w3.eth.block_number
        patient = next(self._visits(1))
        address = self.patients[patient].address
        BatchWriter(self.writer(self.writer_of(patient)), batch_size=self.panel).write(
            BatchItem(address, observation(800_000 + self.records + n)) for n in range(self.panel))
        self.records += self.panel
        self._mix({}, grants=1)
        return int(self.world.chain.w3.eth.block_number) - int(before)
