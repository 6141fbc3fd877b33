"""Consortium proposals and the member list, shared by `ehr consortium` and `ehr demo`."""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from ehr_client.chain.types import Action, Role
from ehr_client.chain.client import ChainClient, TxResult

ROLES = {"provider": Role.PROVIDER, "insurer": Role.INSURER, "lab": Role.LAB, "auditor": Role.AUDITOR,
         "custodian": Role.KEY_CUSTODIAN, "validator": Role.VALIDATOR}
ROLE_NAMES = {int(value): name for name, value in ROLES.items()}
ACTIONS = {a.name.lower().replace("_", "-"): a for a in Action}
ACTION_NAMES = {value: name for name, value in ACTIONS.items()}
DEFAULT_WINDOW = 7 * 86_400


@dataclass(frozen=True)
class Member:
    address: str
    role: str
    suspended: bool
    since: int


@dataclass(frozen=True)
class Proposed:
    proposal_id: int
    expires_at: int
    tx: TxResult


def propose(chain: ChainClient, governor: LocalAccount, action: str, target: str, value: int,
            *, window: int = DEFAULT_WINDOW) -> Proposed:
    """Create a proposal (the proposer's approval is counted at once)."""
    fn = chain.consortium.functions.propose(ACTIONS[action], to_checksum_address(target), value, window)
    tx = chain.transact(governor, fn, action=f"propose {action}")
    event = chain.events_in(tx, "Consortium", "ProposalCreated")[0]
    return Proposed(int(event["proposalId"]), int(event["expiresAt"]), tx)


def approve(chain: ChainClient, governor: LocalAccount, proposal_id: int) -> TxResult:
    return chain.transact(governor, chain.consortium.functions.approve(proposal_id), action="approve proposal")


def execute(chain: ChainClient, governor: LocalAccount, proposal_id: int) -> TxResult:
    return chain.transact(governor, chain.consortium.functions.execute(proposal_id), action="execute proposal")


def approvals(chain: ChainClient, proposal_id: int) -> tuple[int, int]:
    """(approvals so far, threshold) of a proposal."""
    _, count = chain.call(chain.consortium.functions.getProposal(proposal_id), action="read proposal")
    threshold = chain.call(chain.consortium.functions.threshold(), action="read threshold")
    return int(count), int(threshold)


def members(chain: ChainClient) -> list[Member]:
    """Every account ever admitted, with its current role and status (one log query, one batch)."""
    admitted: list[str] = []
    for event in chain.get_events("Consortium", "MemberAdmitted"):
        account = str(event.args["account"])
        if account not in admitted:
            admitted.append(account)
    states = chain.batch_call([chain.consortium.functions.memberOf(a) for a in admitted], action="list members")
    return [
        Member(account, ROLE_NAMES.get(int(role), f"role{int(role)}"), bool(suspended), int(since))
        for account, (role, suspended, since) in zip(admitted, states, strict=True)
    ]


def governance(chain: ChainClient) -> tuple[list[str], int]:
    governors = chain.call(chain.consortium.functions.governors(), action="read governors")
    threshold = chain.call(chain.consortium.functions.threshold(), action="read threshold")
    return [str(g) for g in governors], int(threshold)
