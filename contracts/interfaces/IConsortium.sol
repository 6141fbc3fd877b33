// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IConsortium
/// @notice The permissioned participant list of the network. Governors, set at deployment, admit,
/// suspend and reinstate members (providers, insurers, labs, auditors, key custodians, validators). Admission,
/// reinstatement and every change to the governor set need M-of-N governor approvals through
/// proposals that expire. Suspension is an emergency brake that any single governor can pull.
interface IConsortium {
    /// @notice What a member does in the network. `None` means "not a member".
    /// @dev New roles are appended so stored and signed values keep their numbers. A Validator's
    /// address is its block-sealing key: validators' nodes vote the active Validator members into
    /// the chain's signer set and suspended or removed ones out (`ehr network sync-validators`).
    enum Role {
        None,
        Provider,
        Insurer,
        Lab,
        Auditor,
        KeyCustodian,
        Validator
    }

    /// @notice What a proposal does once executed.
    enum Action {
        Admit,
        Reinstate,
        AddGovernor,
        RemoveGovernor,
        SetThreshold
    }

    /// @notice A proposal as stored. `value` is the role for Admit, the new threshold for SetThreshold.
    struct Proposal {
        Action action;
        address target;
        uint8 value;
        bool executed;
        uint64 expiresAt;
        address proposer;
    }

    /// @notice The caller is not a governor.
    error ConsortiumNotGovernor(address caller);
    /// @notice The governor list or threshold given at deployment or by a proposal is unusable.
    error ConsortiumInvalidGovernance(uint256 governors, uint256 threshold);
    /// @notice The address is already a governor (AddGovernor) or the zero address was given.
    error ConsortiumInvalidTarget(address target);
    /// @notice Admit needs a real role.
    error ConsortiumInvalidRole(uint8 role);
    /// @notice The account is already a member (Admit).
    error ConsortiumAlreadyMember(address account);
    /// @notice The account is not a member (Suspend, Reinstate).
    error ConsortiumNotMember(address account);
    /// @notice Suspend of a suspended member, or Reinstate of an active one.
    error ConsortiumWrongMemberStatus(address account, bool suspended);
    /// @notice No proposal with this id.
    error ConsortiumUnknownProposal(uint256 proposalId);
    /// @notice The proposal's approval window has passed.
    error ConsortiumProposalExpired(uint256 proposalId, uint64 expiredAt);
    /// @notice The proposal was already executed.
    error ConsortiumProposalAlreadyExecuted(uint256 proposalId);
    /// @notice Fewer current governors approved than the threshold needs.
    error ConsortiumNotEnoughApprovals(uint256 proposalId, uint256 approvals, uint256 threshold);
    /// @notice The approval window asked for is zero or longer than the maximum.
    error ConsortiumInvalidWindow(uint64 window);

    /// @notice A governor proposed an action; it auto-counts as the proposer's approval.
    event ProposalCreated(
        uint256 indexed proposalId,
        address indexed proposer,
        Action action,
        address indexed target,
        uint8 value,
        uint64 expiresAt
    );
    /// @notice A governor approved a proposal.
    event ProposalApproved(uint256 indexed proposalId, address indexed governor);
    /// @notice A proposal reached its threshold and was carried out.
    event ProposalExecuted(uint256 indexed proposalId, address indexed executor);
    /// @notice An account became a member with a role.
    event MemberAdmitted(address indexed account, Role role);
    /// @notice A member lost every read and write path at once.
    event MemberSuspended(address indexed account, address indexed governor);
    /// @notice A suspended member was restored.
    event MemberReinstated(address indexed account);
    /// @notice The governor set changed.
    event GovernorAdded(address indexed governor);
    /// @notice The governor set changed.
    event GovernorRemoved(address indexed governor);
    /// @notice The number of approvals a proposal needs changed.
    event ThresholdChanged(uint256 threshold);

    /// @notice Propose an action that takes effect once `threshold()` governors approved it.
    /// @dev The proposer's approval is recorded at once.
    /// Requirements:
    /// - caller is a governor; `window` is between 1 second and `MAX_PROPOSAL_WINDOW`;
    /// - for Admit: `target` is not a member and `value` is a role other than None;
    /// - for Reinstate: `target` is a suspended member;
    /// - for AddGovernor/RemoveGovernor: `target` is (not) a governor;
    /// - for SetThreshold: `value` is between 1 and the governor count.
    /// Emits a {ProposalCreated} and a {ProposalApproved} event.
    /// @param action What to do.
    /// @param target The account acted upon (ignored for SetThreshold).
    /// @param value The role for Admit, the new threshold for SetThreshold, otherwise 0.
    /// @param window Seconds from now during which approvals and execution are accepted.
    /// @return proposalId The id to approve and execute.
    function propose(Action action, address target, uint8 value, uint64 window) external returns (uint256 proposalId);

    /// @notice Approve a pending proposal.
    /// @dev Approving twice is a no-op that emits nothing.
    /// Requirements: caller is a governor; the proposal exists, is not executed and not expired.
    /// Emits a {ProposalApproved} event.
    /// @param proposalId The proposal to approve.
    function approve(uint256 proposalId) external;

    /// @notice Carry out a proposal that has enough approvals from current governors.
    /// @dev Approvals of governors removed since they approved do not count.
    /// Requirements: caller is a governor; the proposal exists, is not executed, not expired,
    /// and at least `threshold()` current governors approved it; the action is still valid.
    /// Emits a {ProposalExecuted} event and the event of the action.
    /// @param proposalId The proposal to execute.
    function execute(uint256 proposalId) external;

    /// @notice Suspend a member at once: every read and write path of the member closes.
    /// @dev An emergency brake any single governor can pull; reinstatement needs M-of-N.
    /// Requirements: caller is a governor; `account` is an active member.
    /// Emits a {MemberSuspended} event.
    /// @param account The member to suspend.
    function suspend(address account) external;

    /// @notice Whether `account` is a member that is not suspended.
    /// @param account The account to check.
    /// @return True when active.
    function isActiveMember(address account) external view returns (bool);

    /// @notice Whether `account` is an active member holding `role`.
    /// @param account The account to check.
    /// @param role The role required.
    /// @return True when active with that role.
    function hasActiveRole(address account, Role role) external view returns (bool);

    /// @notice The membership of `account`.
    /// @param account The account to look up.
    /// @return role The role (None when not a member).
    /// @return suspended Whether the member is suspended.
    /// @return since When the member was admitted.
    function memberOf(address account) external view returns (Role role, bool suspended, uint64 since);

    /// @notice Whether `account` is a governor.
    /// @param account The account to check.
    /// @return True when a governor.
    function isGovernor(address account) external view returns (bool);

    /// @notice The current governors.
    /// @return The governor addresses.
    function governors() external view returns (address[] memory);

    /// @notice How many governor approvals a proposal needs.
    /// @return The threshold M.
    function threshold() external view returns (uint256);

    /// @notice A stored proposal and its count of approvals by current governors.
    /// @param proposalId The proposal to read.
    /// @return proposal The proposal.
    /// @return approvals Approvals by current governors.
    function getProposal(uint256 proposalId) external view returns (Proposal memory proposal, uint256 approvals);
}
