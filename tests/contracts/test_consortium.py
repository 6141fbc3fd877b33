import ape
import pytest

from tests.constants import ACTION, DAY, ROLE


def test_constructor_rejects_threshold_above_governor_count(project, accounts):
    with ape.reverts(project.Consortium.ConsortiumInvalidGovernance, governors=2, threshold=3):
        accounts[0].deploy(project.Consortium, [accounts[0].address, accounts[1].address], 3)


def test_constructor_rejects_duplicate_governor(project, accounts):
    with ape.reverts(project.Consortium.ConsortiumInvalidTarget, target=accounts[0].address):
        accounts[0].deploy(project.Consortium, [accounts[0].address, accounts[0].address], 1)


def test_admission_needs_threshold_approvals(consortium, governors, applicant):
    tx = consortium.propose(ACTION["admit"], applicant.address, ROLE["provider"], DAY, sender=governors[0])
    proposal_id = tx.return_value
    created = tx.events.filter(consortium.ProposalCreated)[0]
    assert created.proposalId == proposal_id and created.target == applicant.address

    with ape.reverts(consortium.ConsortiumNotEnoughApprovals, proposalId=proposal_id, approvals=1, threshold=2):
        consortium.execute(proposal_id, sender=governors[0])

    consortium.approve(proposal_id, sender=governors[2])
    tx = consortium.execute(proposal_id, sender=governors[0])
    assert tx.events.filter(consortium.MemberAdmitted)[0].account == applicant.address
    assert consortium.isActiveMember(applicant)
    assert consortium.hasActiveRole(applicant, ROLE["provider"])
    assert not consortium.hasActiveRole(applicant, ROLE["lab"])


def test_approving_twice_emits_nothing(consortium, governors, applicant):
    proposal_id = consortium.propose(ACTION["admit"], applicant, ROLE["lab"], DAY, sender=governors[0]).return_value
    tx = consortium.approve(proposal_id, sender=governors[0])
    assert not tx.events.filter(consortium.ProposalApproved)
    assert consortium.getProposal(proposal_id)[1] == 1


def test_non_governor_cannot_propose_approve_execute_or_suspend(network, consortium, stranger, hospital):
    with ape.reverts(consortium.ConsortiumNotGovernor, caller=stranger.address):
        consortium.propose(ACTION["admit"], stranger, ROLE["provider"], DAY, sender=stranger)
    with ape.reverts(consortium.ConsortiumNotGovernor, caller=stranger.address):
        consortium.approve(0, sender=stranger)
    with ape.reverts(consortium.ConsortiumNotGovernor, caller=stranger.address):
        consortium.execute(0, sender=stranger)
    with ape.reverts(consortium.ConsortiumNotGovernor, caller=hospital.address):
        consortium.suspend(hospital, sender=hospital)


def test_proposal_expires(consortium, governors, applicant, chain):
    proposal_id = consortium.propose(ACTION["admit"], applicant, ROLE["provider"], 3600, sender=governors[0]).return_value
    expires_at = consortium.getProposal(proposal_id)[0][4]  # Proposal.expiresAt
    chain.pending_timestamp = expires_at + 1
    with ape.reverts(consortium.ConsortiumProposalExpired, proposalId=proposal_id, expiredAt=expires_at):
        consortium.approve(proposal_id, sender=governors[1])


def test_executed_proposal_cannot_run_again(consortium, governors, applicant):
    proposal_id = consortium.propose(ACTION["admit"], applicant, ROLE["provider"], DAY, sender=governors[0]).return_value
    consortium.approve(proposal_id, sender=governors[1])
    consortium.execute(proposal_id, sender=governors[1])
    with ape.reverts(consortium.ConsortiumProposalAlreadyExecuted, proposalId=proposal_id):
        consortium.execute(proposal_id, sender=governors[1])


def test_unknown_proposal_reverts(consortium, governors):
    with ape.reverts(consortium.ConsortiumUnknownProposal, proposalId=99):
        consortium.approve(99, sender=governors[0])


@pytest.mark.parametrize("bad_role", [0, 7])
def test_admit_rejects_invalid_role(consortium, governors, applicant, bad_role):
    with ape.reverts(consortium.ConsortiumInvalidRole, role=bad_role):
        consortium.propose(ACTION["admit"], applicant, bad_role, DAY, sender=governors[0])


def test_admit_rejects_existing_member(network, consortium, governors, hospital):
    with ape.reverts(consortium.ConsortiumAlreadyMember, account=hospital.address):
        consortium.propose(ACTION["admit"], hospital, ROLE["lab"], DAY, sender=governors[0])


def test_invalid_window_reverts(consortium, governors, applicant):
    with ape.reverts(consortium.ConsortiumInvalidWindow, window=0):
        consortium.propose(ACTION["admit"], applicant, ROLE["lab"], 0, sender=governors[0])


def test_single_governor_suspends_and_reinstatement_needs_threshold(network, consortium, governors, hospital):
    tx = consortium.suspend(hospital, sender=governors[2])
    event = tx.events.filter(consortium.MemberSuspended)[0]
    assert event.account == hospital.address and event.governor == governors[2].address
    assert not consortium.isActiveMember(hospital)
    assert not consortium.hasActiveRole(hospital, ROLE["provider"])

    with ape.reverts(consortium.ConsortiumWrongMemberStatus, account=hospital.address, suspended=True):
        consortium.suspend(hospital, sender=governors[0])

    proposal_id = consortium.propose(ACTION["reinstate"], hospital, 0, DAY, sender=governors[0]).return_value
    consortium.approve(proposal_id, sender=governors[1])
    tx = consortium.execute(proposal_id, sender=governors[0])
    assert tx.events.filter(consortium.MemberReinstated)[0].account == hospital.address
    assert consortium.isActiveMember(hospital)


def test_suspend_and_reinstate_reject_wrong_targets(network, consortium, governors, stranger, hospital):
    with ape.reverts(consortium.ConsortiumNotMember, account=stranger.address):
        consortium.suspend(stranger, sender=governors[0])
    with ape.reverts(consortium.ConsortiumWrongMemberStatus, account=hospital.address, suspended=False):
        consortium.propose(ACTION["reinstate"], hospital, 0, DAY, sender=governors[0])


def test_governor_changes_need_threshold_and_removed_approvals_stop_counting(consortium, governors, stranger, applicant):
    add_id = consortium.propose(ACTION["add_governor"], stranger, 0, DAY, sender=governors[0]).return_value
    consortium.approve(add_id, sender=governors[1])
    consortium.execute(add_id, sender=governors[0])
    assert consortium.isGovernor(stranger)
    assert len(consortium.governors()) == 4

    admit_id = consortium.propose(ACTION["admit"], applicant, ROLE["provider"], DAY, sender=stranger).return_value
    remove_id = consortium.propose(ACTION["remove_governor"], stranger, 0, DAY, sender=governors[0]).return_value
    consortium.approve(remove_id, sender=governors[1])
    tx = consortium.execute(remove_id, sender=governors[1])
    assert tx.events.filter(consortium.GovernorRemoved)[0].governor == stranger.address
    assert not consortium.isGovernor(stranger)
    # the removed governor's approval of admit_id no longer counts
    assert consortium.getProposal(admit_id)[1] == 0


def test_threshold_change_and_bounds(consortium, governors):
    with ape.reverts(consortium.ConsortiumInvalidGovernance, governors=3, threshold=4):
        consortium.propose(ACTION["set_threshold"], governors[0], 4, DAY, sender=governors[0])
    proposal_id = consortium.propose(ACTION["set_threshold"], governors[0], 3, DAY, sender=governors[0]).return_value
    consortium.approve(proposal_id, sender=governors[1])
    tx = consortium.execute(proposal_id, sender=governors[1])
    assert tx.events.filter(consortium.ThresholdChanged)[0].threshold == 3
    assert consortium.threshold() == 3
    # with M = N = 3, no governor can be removed
    with ape.reverts(consortium.ConsortiumInvalidGovernance, governors=2, threshold=3):
        consortium.propose(ACTION["remove_governor"], governors[2], 0, DAY, sender=governors[0])


def test_validator_role_is_admitted_and_lost_on_suspension(consortium, governors, applicant):
    proposal_id = consortium.propose(ACTION["admit"], applicant, ROLE["validator"], DAY,
                                     sender=governors[0]).return_value
    consortium.approve(proposal_id, sender=governors[1])
    consortium.execute(proposal_id, sender=governors[0])
    assert consortium.hasActiveRole(applicant, ROLE["validator"])
    assert consortium.memberOf(applicant)[0] == ROLE["validator"]

    consortium.suspend(applicant, sender=governors[2])
    assert not consortium.hasActiveRole(applicant, ROLE["validator"])
