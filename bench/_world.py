"""A fresh Anvil with the suite deployed and a small consortium, owned by the benchmark run.

Accounts come from Anvil's development mnemonic (funded on every fresh node). Every client uses
the one LocalStore of the run (as a consortium shares its store) and a state directory of its own,
all under one temporary folder removed at the end.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import TracebackType

from eth_account import Account

from ehr_client.chain.client import ChainClient, deploy_suite
from ehr_client.client import EHRClient, Identity
from ehr_client.crypto import generate_x25519_keypair
from ehr_client.dev.node import DEV_MNEMONIC, AnvilNode
from ehr_client.storage import LocalStore

ROLES = {"provider": 1, "insurer": 2, "lab": 3}
ADMIT, DAY = 0, 86_400
CAST = ("gov_a", "gov_b", "gov_c", "hospital", "doctor", "lab", "patient", "patient2", "fresh_grantee",
        "second_grantee", "memory_patient")
MEMBERS = {"hospital": "provider", "doctor": "provider", "lab": "lab", "fresh_grantee": "provider",
           "second_grantee": "provider"}


def dev_identity(index: int) -> Identity:
    Account.enable_unaudited_hdwallet_features()
    account = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return Identity(account, {1: generate_x25519_keypair().private_key})


class World:
    """Start with `with World() as world:`; `client(name, tag)` gives an EHRClient with its own store."""

    def __init__(self, rpc_url: str | None = None, *, confirmations: int = 0) -> None:
        """On a fresh Anvil of its own, or on the chain at `rpc_url` (whose genesis funds `funded()`),
        with writes reported after `confirmations` blocks."""
        self.root = Path(tempfile.mkdtemp(prefix="ehr-bench-"))
        self.node = AnvilNode(log_path=self.root / "anvil.log", accounts=len(CAST)) if rpc_url is None else None
        self._rpc_url = rpc_url
        self.confirmations = confirmations
        self.ids = {name: dev_identity(i) for i, name in enumerate(CAST)}
        self._chain: ChainClient | None = None

    @staticmethod
    def funded() -> list[str]:
        """The addresses of the cast, for a genesis allocation."""
        return [dev_identity(i).address for i in range(len(CAST))]

    def __enter__(self) -> World:
        try:
            if self.node is not None:
                self.node.start()
            governors = [self.ids[g].address for g in ("gov_a", "gov_b", "gov_c")]
            deployment = deploy_suite(self.rpc_url, self.ids["gov_a"].account, network="bench",
                                      governors=governors, threshold=2, confirmations=self.confirmations)
            self._chain = ChainClient(self.rpc_url, deployment, timeout=60, confirmations=self.confirmations)
            self._admit_members()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _admit_members(self) -> None:
        consortium = self.chain.consortium.functions
        for name, role in MEMBERS.items():
            proposed = self.chain.transact(self.ids["gov_a"].account, consortium.propose(
                ADMIT, self.ids[name].address, ROLES[role], DAY), action="propose")
            proposal = self.chain.events_in(proposed, "Consortium", "ProposalCreated")[0]["proposalId"]
            self.chain.transact(self.ids["gov_b"].account, consortium.approve(proposal), action="approve")
            self.chain.transact(self.ids["gov_b"].account, consortium.execute(proposal), action="execute")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.node is not None:
            self.node.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def chain(self) -> ChainClient:
        if self._chain is None:
            raise RuntimeError("the benchmark world is not started; use `with World() as world:`")
        return self._chain

    @property
    def rpc_url(self) -> str:
        return self.node.rpc_url if self.node is not None else str(self._rpc_url)

    def client(self, name: str, tag: str = "main", *, chain: ChainClient | None = None) -> EHRClient:
        """`name`'s client on the consortium's one store and `name`'s one home (and `chain`, another
        `ChainClient` of the same deployment, if given). `tag` names the section asking; it no longer
        picks a home: a batch writer refuses a home whose logs miss batches its author anchored on
        this chain, so every section of one identity shares one home, as a person does."""
        del tag
        return EHRClient(chain or self.chain, LocalStore(self.root / "store"), self.ids[name],
                         state_dir=self.root / "state" / name)

    def onboard(self) -> None:
        """Register `patient` and publish the keys of the patient and the members, unless an earlier
        section (gas, which measures these transactions) did: lets `--only` run any section alone."""
        patient = self.client("patient")
        if self.chain.call(self.chain.records.functions.isPatient(patient.address), action="look up patient"):
            return
        patient.register_patient()
        for name in ("patient", "lab", "doctor", "fresh_grantee", "second_grantee"):
            self.client(name).publish_key()

    def scratch(self, name: str) -> Path:
        path = self.root / "scratch" / name
        path.mkdir(parents=True, exist_ok=True)
        return path
