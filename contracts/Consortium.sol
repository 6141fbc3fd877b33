// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IConsortium} from "./interfaces/IConsortium.sol";

/// @title Consortium
/// @notice Permissioned membership with M-of-N governance. See {IConsortium}.
contract Consortium is IConsortium {
    /// @notice Upper bound on the governor set, so approval counting stays bounded.
    uint256 public constant MAX_GOVERNORS = 32;
    /// @notice Longest approval window a proposal may ask for.
    uint64 public constant MAX_PROPOSAL_WINDOW = 30 days;

    struct Member {
        Role role;
        bool suspended;
        uint64 since;
    }

    address[] private _governors;
    mapping(address account => bool) private _isGovernor;
    uint256 private _threshold;

    mapping(address account => Member) private _members;

    Proposal[] private _proposals;
    mapping(uint256 proposalId => mapping(address governor => bool)) private _approved;

    modifier onlyGovernor() {
        if (!_isGovernor[msg.sender]) revert ConsortiumNotGovernor(msg.sender);
        _;
    }

    /// @param initialGovernors The governor set N; no duplicates, no zero address.
    /// @param initialThreshold The approvals M a proposal needs, 1 <= M <= N.
    constructor(address[] memory initialGovernors, uint256 initialThreshold) {
        uint256 count = initialGovernors.length;
        if (count == 0 || count > MAX_GOVERNORS || initialThreshold == 0 || initialThreshold > count) {
            revert ConsortiumInvalidGovernance(count, initialThreshold);
        }
        for (uint256 i = 0; i < count; ++i) {
            address governor = initialGovernors[i];
            if (governor == address(0) || _isGovernor[governor]) revert ConsortiumInvalidTarget(governor);
            _isGovernor[governor] = true;
            _governors.push(governor);
            emit GovernorAdded(governor);
        }
        _threshold = initialThreshold;
        emit ThresholdChanged(initialThreshold);
    }

    /// @inheritdoc IConsortium
    function propose(Action action, address target, uint8 value, uint64 window)
        external
        onlyGovernor
        returns (uint256 proposalId)
    {
        if (window == 0 || window > MAX_PROPOSAL_WINDOW) revert ConsortiumInvalidWindow(window);
        _checkAction(action, target, value);
        proposalId = _proposals.length;
        uint64 expiresAt = uint64(block.timestamp) + window;
        _proposals.push(
            Proposal({
                action: action,
                target: target,
                value: value,
                executed: false,
                expiresAt: expiresAt,
                proposer: msg.sender
            })
        );
        emit ProposalCreated(proposalId, msg.sender, action, target, value, expiresAt);
        _approved[proposalId][msg.sender] = true;
        emit ProposalApproved(proposalId, msg.sender);
    }

    /// @inheritdoc IConsortium
    function approve(uint256 proposalId) external onlyGovernor {
        _pendingProposal(proposalId);
        if (_approved[proposalId][msg.sender]) return;
        _approved[proposalId][msg.sender] = true;
        emit ProposalApproved(proposalId, msg.sender);
    }

    /// @inheritdoc IConsortium
    function execute(uint256 proposalId) external onlyGovernor {
        Proposal storage proposal = _pendingProposal(proposalId);
        uint256 approvals = _countApprovals(proposalId);
        if (approvals < _threshold) revert ConsortiumNotEnoughApprovals(proposalId, approvals, _threshold);
        Action action = proposal.action;
        address target = proposal.target;
        uint8 value = proposal.value;
        _checkAction(action, target, value);
        proposal.executed = true;
        emit ProposalExecuted(proposalId, msg.sender);

        if (action == Action.Admit) {
            _members[target] = Member({role: Role(value), suspended: false, since: uint64(block.timestamp)});
            emit MemberAdmitted(target, Role(value));
        } else if (action == Action.Reinstate) {
            _members[target].suspended = false;
            emit MemberReinstated(target);
        } else if (action == Action.AddGovernor) {
            _isGovernor[target] = true;
            _governors.push(target);
            emit GovernorAdded(target);
        } else if (action == Action.RemoveGovernor) {
            _removeGovernor(target);
        } else {
            _threshold = value;
            emit ThresholdChanged(value);
        }
    }

    /// @inheritdoc IConsortium
    function suspend(address account) external onlyGovernor {
        Member storage member = _members[account];
        if (member.role == Role.None) revert ConsortiumNotMember(account);
        if (member.suspended) revert ConsortiumWrongMemberStatus(account, true);
        member.suspended = true;
        emit MemberSuspended(account, msg.sender);
    }

    /// @inheritdoc IConsortium
    function isActiveMember(address account) external view returns (bool) {
        Member storage member = _members[account];
        return member.role != Role.None && !member.suspended;
    }

    /// @inheritdoc IConsortium
    function hasActiveRole(address account, Role role) external view returns (bool) {
        Member storage member = _members[account];
        return role != Role.None && member.role == role && !member.suspended;
    }

    /// @inheritdoc IConsortium
    function memberOf(address account) external view returns (Role role, bool suspended, uint64 since) {
        Member storage member = _members[account];
        return (member.role, member.suspended, member.since);
    }

    /// @inheritdoc IConsortium
    function isGovernor(address account) external view returns (bool) {
        return _isGovernor[account];
    }

    /// @inheritdoc IConsortium
    function governors() external view returns (address[] memory) {
        return _governors;
    }

    /// @inheritdoc IConsortium
    function threshold() external view returns (uint256) {
        return _threshold;
    }

    /// @inheritdoc IConsortium
    function getProposal(uint256 proposalId) external view returns (Proposal memory proposal, uint256 approvals) {
        if (proposalId >= _proposals.length) revert ConsortiumUnknownProposal(proposalId);
        return (_proposals[proposalId], _countApprovals(proposalId));
    }

    function _pendingProposal(uint256 proposalId) private view returns (Proposal storage proposal) {
        if (proposalId >= _proposals.length) revert ConsortiumUnknownProposal(proposalId);
        proposal = _proposals[proposalId];
        if (proposal.executed) revert ConsortiumProposalAlreadyExecuted(proposalId);
        if (block.timestamp > proposal.expiresAt) revert ConsortiumProposalExpired(proposalId, proposal.expiresAt);
    }

    /// @dev Validates an action against the current state, at proposal time and again at execution.
    function _checkAction(Action action, address target, uint8 value) private view {
        if (action == Action.SetThreshold) {
            if (value == 0 || value > _governors.length) revert ConsortiumInvalidGovernance(_governors.length, value);
            return;
        }
        if (target == address(0)) revert ConsortiumInvalidTarget(target);
        if (action == Action.Admit) {
            if (value == uint8(Role.None) || value > uint8(type(Role).max)) revert ConsortiumInvalidRole(value);
            if (_members[target].role != Role.None) revert ConsortiumAlreadyMember(target);
        } else if (action == Action.Reinstate) {
            Member storage member = _members[target];
            if (member.role == Role.None) revert ConsortiumNotMember(target);
            if (!member.suspended) revert ConsortiumWrongMemberStatus(target, false);
        } else if (action == Action.AddGovernor) {
            if (_isGovernor[target]) revert ConsortiumInvalidTarget(target);
            if (_governors.length == MAX_GOVERNORS) revert ConsortiumInvalidGovernance(MAX_GOVERNORS + 1, _threshold);
        } else {
            if (!_isGovernor[target]) revert ConsortiumInvalidTarget(target);
            if (_governors.length - 1 < _threshold) revert ConsortiumInvalidGovernance(_governors.length - 1, _threshold);
        }
    }

    function _countApprovals(uint256 proposalId) private view returns (uint256 approvals) {
        uint256 count = _governors.length;
        for (uint256 i = 0; i < count; ++i) {
            if (_approved[proposalId][_governors[i]]) ++approvals;
        }
    }

    function _removeGovernor(address governor) private {
        _isGovernor[governor] = false;
        uint256 last = _governors.length - 1;
        for (uint256 i = 0; i <= last; ++i) {
            if (_governors[i] == governor) {
                _governors[i] = _governors[last];
                _governors.pop();
                break;
            }
        }
        emit GovernorRemoved(governor);
    }
}
