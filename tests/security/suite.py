"""A suite deployed on an Anvil node of the test's own (not Ape's), with dev accounts by role.

Used where a test must own the node: a second chain id, killing and restarting the node, many
processes writing at once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ehr_client.chain.client import ChainClient, deploy_suite
from ehr_client.chain.deployment import Deployment
from ehr_client.client import EHRClient, Identity
from ehr_client.dev.node import DEV_MNEMONIC
from ehr_client.storage import BlobStore
from tests.constants import ACTION, DAY, ROLE

Account.enable_unaudited_hdwallet_features()

# Index of each role among the node's funded dev accounts.
GOVERNORS = (0, 1, 2)
ROLES = {"hospital": 3, "doctor": 4, "lab": 5, "insurer": 6, "patient": 8, "stranger": 9}


def signer_of(ape_account: Any) -> LocalAccount:
    """The eth-account signer of an Ape test account (same key). A plain function, not a fixture:
    a session fixture first used by a later test makes Ape rebase its chain snapshots."""
    return Account.from_key(ape_account.private_key)


def dev_account(index: int) -> LocalAccount:
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


@dataclass
class LocalSuite:
    chain: ChainClient
    accounts: dict[str, LocalAccount]

    @property
    def deployment(self) -> Deployment:
        return self.chain.deployment

    def admit(self, account: str, role: str) -> None:
        """Admit through a 2-of-3 proposal, as governance would."""
        gov_a, gov_b = dev_account(GOVERNORS[0]), dev_account(GOVERNORS[1])
        fns = self.chain.consortium.functions
        result = self.chain.transact(gov_a, fns.propose(ACTION["admit"], account, ROLE[role], DAY), action="propose")
        proposal = self.chain.events_in(result, "Consortium", "ProposalCreated")[0]["proposalId"]
        self.chain.transact(gov_b, fns.approve(proposal), action="approve")
        self.chain.transact(gov_b, fns.execute(proposal), action="execute")


def deploy_local_suite(rpc_url: str, *, network: str = "security-test") -> LocalSuite:
    """Deploy from dev account 0 (so a fresh node always gets the same addresses) and admit members."""
    governors = [dev_account(i) for i in GOVERNORS]
    deployment = deploy_suite(rpc_url, governors[0], network=network, governors=[g.address for g in governors],
                              threshold=2)
    suite = LocalSuite(ChainClient(rpc_url, deployment), {name: dev_account(i) for name, i in ROLES.items()})
    for name, role in (("hospital", "provider"), ("doctor", "provider"), ("lab", "lab"), ("insurer", "insurer")):
        suite.admit(suite.accounts[name].address, role)
    return suite


def identity_of(account: LocalAccount) -> Identity:
    """The account's wallet with an X25519 key derived from it, so every process acting as the
    same person holds the same key (test identities only; real keys come from the keystore)."""
    return Identity.from_private_keys(account.key, {1: hashlib.sha256(b"ehr-test-x25519" + account.key).digest()})


def ehr_client_for(chain: ChainClient, store: BlobStore, account: LocalAccount, state_dir: Path) -> EHRClient:
    return EHRClient(chain, store, identity_of(account), state_dir=state_dir)
