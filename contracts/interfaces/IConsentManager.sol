// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IRecordRegistry} from "./IRecordRegistry.sol";

/// @title IConsentManager
/// @notice A patient's permissions over their records: who may read or amend which categories
/// (scopes) and until when. Grants and revocations are made directly or by an EIP-712 signature
/// that anyone may relay, so a patient can consent from any wallet without holding gas.
/// Break-glass emergency access needs two distinct providers, lasts at most one hour and is
/// always evented. `requestAccess` is the on-chain fact that a read happened.
interface IConsentManager {
    /// @notice What a grant allows. Amend implies read.
    enum Access {
        None,
        Read,
        Amend
    }

    /// @notice One grant from a patient to a grantee and the pair's signature nonce, in one slot.
    /// `nonce` is what the next signature must carry; `grantNonce` the nonce the grant in force was
    /// decided at (a revocation signed at that nonce or later ends it); `purposeTag` the first
    /// five bytes of the purpose's keccak256 (the full hash is in {AccessGranted}).
    struct Grant {
        uint64 scopes;
        uint64 expiresAt;
        Access access;
        uint40 nonce;
        uint40 grantNonce;
        bytes5 purposeTag;
    }

    /// @notice A break-glass request and, once confirmed by a second provider, its expiry.
    struct BreakGlass {
        uint64 requestedAt;
        uint64 expiresAt;
        uint8 reason;
    }

    /// @notice The caller may not read this record now.
    error ConsentUnauthorized(address caller, bytes32 recordId);
    /// @notice The grantee is the patient; or, for a signed grant, not an active member (or not a
    /// provider or lab, for amend) when it is relayed.
    error ConsentInvalidGrantee(address grantee);
    /// @notice Scopes are empty, access is None, or the expiry is not in the future.
    error ConsentInvalidTerms(uint64 scopes, Access access, uint64 expiresAt);
    /// @notice There is no grant to revoke.
    error ConsentNoGrant(address patient, address grantee);
    /// @notice The patient decided the grant in force after signing this revocation (at `nonce`).
    error ConsentRevocationSuperseded(address patient, address grantee, uint256 nonce);
    /// @notice The signed message's `signatureValidUntil` has passed.
    error ConsentSignatureExpired(uint64 signatureValidUntil);
    /// @notice The signature was not made by the patient over these exact terms, this chain,
    /// this contract and the current nonce of the (patient, grantee) pair.
    error ConsentInvalidSignature(address patient);
    /// @notice Only active providers may open or confirm break-glass access.
    error ConsentBreakGlassNotProvider(address caller);
    /// @notice The confirming provider must differ from the requesting one.
    error ConsentBreakGlassSameProvider(address provider);
    /// @notice There is no pending break-glass request to confirm, or it went stale.
    error ConsentBreakGlassNotPending(address patient, address requester);
    /// @notice Reason codes start at 1.
    error ConsentBreakGlassInvalidReason(uint8 reason);
    /// @notice The record was erased; nobody can read it any more.
    error ConsentRecordErased(bytes32 recordId);

    /// @notice A patient granted (or changed) access; `purposeHash` is keccak256 of the purpose of use
    /// in words ("treatment", "research", ...), as the patient signed or sent it.
    event AccessGranted(
        address indexed patient,
        address indexed grantee,
        uint64 scopes,
        Access access,
        uint64 expiresAt,
        bytes32 purposeHash
    );
    /// @notice A patient revoked a grant.
    event AccessRevoked(address indexed patient, address indexed grantee);
    /// @notice A patient voided every signature for this grantee not yet relayed.
    event SignaturesCancelled(address indexed patient, address indexed grantee, uint40 nonce);
    /// @notice A permitted reader asked for a record: the on-chain fact of a read.
    event AccessRequested(bytes32 indexed recordId, address indexed patient, address indexed reader, bool emergency);
    /// @notice A provider asked for emergency access to a patient's records.
    event BreakGlassRequested(address indexed patient, address indexed requester, uint8 reason);
    /// @notice A second provider confirmed emergency access; it lasts until `expiresAt`.
    event BreakGlassActivated(
        address indexed patient, address indexed requester, address indexed approver, uint8 reason, uint64 expiresAt
    );

    /// @notice Grant `grantee` access to the caller's records in `scopes` until `expiresAt`, for `purpose`.
    /// @dev Replaces any earlier grant to the same grantee and voids the patient's unrelayed
    /// signatures for this grantee (grants and revocations alike), even when it repeats the terms
    /// in force (it then emits nothing).
    /// The grantee's membership is not checked here but every time it acts: {requestAccess},
    /// {canRead} and {canAmend} ask for an active member (a provider or lab to amend) at that
    /// moment, so a grant to an address that is not, or no longer, such a member grants nothing
    /// until the consortium admits or reinstates it. Clients check membership before granting.
    /// Requirements:
    /// - `grantee` is not the caller;
    /// - `scopes` is non-zero, `access` is not None, `expiresAt` is in the future.
    /// Emits an {AccessGranted} event.
    /// @param grantee Who receives access.
    /// @param scopes Category bitmask.
    /// @param access Read or Amend.
    /// @param expiresAt Unix time when the grant ends.
    /// @param purpose Purpose of use in words (FHIR Consent purpose, e.g. "treatment"); its hash is evented.
    function grant(address grantee, uint64 scopes, Access access, uint64 expiresAt, string calldata purpose) external;

    /// @notice Same as {grant}, for `patient`, authorised by the patient's EIP-712 signature over
    /// `Grant(address patient,address grantee,Categories categories,bool mayAmend,string purpose,uint64 grantEndsAt,uint256 nonce,uint64 signatureValidUntil)`
    /// `Categories(bool demographics,bool lab,...,bool socialHistory,bool other)` (one bool per
    /// named scope bit, see `CATEGORIES_TYPEHASH`) with the current `nonces(patient, grantee)`.
    /// Anyone may relay it.
    /// @dev Consumes the nonce even when the terms are unchanged, so no signature works twice.
    /// Unlike {grant}, the grantee must be an active member when the signature is relayed (a
    /// provider or lab for amend): the patient did not choose that moment, and a grant relayed
    /// during a suspension would otherwise open at reinstatement, after the signature expired.
    /// Requirements: as {grant}; the grantee as above; `scopes` only has named bits (`NAMED_SCOPES`);
    /// `signatureValidUntil` not passed; the signature is the patient's.
    /// Emits an {AccessGranted} event when the terms change.
    /// @param patient The signer.
    /// @param grantee Who receives access.
    /// @param scopes Category bitmask (the wallet showed one yes/no per category).
    /// @param mayAmend Amend (and read) rather than read only.
    /// @param purpose Purpose of use in words, as signed.
    /// @param grantEndsAt Unix time when the grant ends.
    /// @param signatureValidUntil Unix time after which the signature may no longer be relayed.
    /// @param signature 65-byte ECDSA signature.
    function grantBySig(
        address patient,
        address grantee,
        uint64 scopes,
        bool mayAmend,
        string calldata purpose,
        uint64 grantEndsAt,
        uint64 signatureValidUntil,
        bytes calldata signature
    ) external;

    /// @notice Revoke the caller's grant to `grantee`, effective at once; also voids the caller's
    /// unrelayed signatures for this grantee.
    /// Requirements: a grant to `grantee` exists (expired grants can still be revoked).
    /// Emits an {AccessRevoked} event.
    /// @param grantee Whose access ends.
    function revoke(address grantee) external;

    /// @notice Same as {revoke}, authorised by the patient's EIP-712 signature over
    /// `Revoke(address patient,address grantee,uint256 nonce,uint64 signatureValidUntil)`.
    /// @dev A revocation signed at nonce n ends a grant decided at nonce n or earlier, whether that
    /// grant was relayed before or after the revocation was signed; a grant signed at n and not
    /// relayed yet can no longer be. A grant the patient decided later (at a higher nonce) stands.
    /// With no grant in force and `nonce` current, it only voids the grants signed at `nonce`.
    /// Requirements: `nonce` is at most `nonces(patient, grantee)` and not below the nonce of the
    /// grant in force; a grant is in force, or `nonce` is current; `signatureValidUntil` not passed;
    /// the signature is the patient's.
    /// Emits an {AccessRevoked} event, or a {SignaturesCancelled} event when no grant was in force.
    /// @param patient The signer.
    /// @param grantee Whose access ends.
    /// @param nonce `nonces(patient, grantee)` when the patient signed.
    /// @param signatureValidUntil Unix time after which the signature may no longer be relayed.
    /// @param signature 65-byte ECDSA signature.
    function revokeBySig(
        address patient,
        address grantee,
        uint256 nonce,
        uint64 signatureValidUntil,
        bytes calldata signature
    ) external;

    /// @notice Void every grant or revocation the caller signed for `grantee` and has not yet seen
    /// relayed, by moving the pair's nonce on.
    /// @dev Grants and revocations move the nonce too; this is for signatures given out while no
    /// grant exists (nothing to revoke), or revocations the patient changed their mind about.
    /// Emits a {SignaturesCancelled} event.
    /// @param grantee The grantee the signatures name.
    function cancelSignatures(address grantee) external;

    /// @notice Ask for emergency read access to all of `patient`'s records.
    /// @dev Access starts only when a second, distinct provider confirms within
    /// `BREAK_GLASS_CONFIRM_WINDOW`. Asking again replaces a pending or active request.
    /// Requirements: caller is an active provider; `reason` is non-zero.
    /// Emits a {BreakGlassRequested} event.
    /// @param patient Whose records.
    /// @param reason A reason code (1 = unconscious patient, 2 = life-threatening emergency, 3 = other, documented off chain).
    function openBreakGlass(address patient, uint8 reason) external;

    /// @notice Confirm another provider's pending break-glass request; access lasts `BREAK_GLASS_WINDOW`.
    /// Requirements: caller is an active provider other than `requester`; the request is pending
    /// and younger than `BREAK_GLASS_CONFIRM_WINDOW`.
    /// Emits a {BreakGlassActivated} event.
    /// @param patient Whose records.
    /// @param requester The provider who asked.
    function confirmBreakGlass(address patient, address requester) external;

    /// @notice Record that the caller reads `recordId` now. Reverts when the caller may not read it.
    /// @dev Custodians release key fragments only after seeing this event.
    /// Requirements: the record exists and is not tombstoned; the caller is the patient, holds a
    /// valid grant covering the record's scope, or has active break-glass access.
    /// Emits an {AccessRequested} event.
    /// @param recordId The record to read.
    function requestAccess(bytes32 recordId) external;

    /// @notice Same as {requestAccess} for a record anchored in a batch that was never amended or
    /// tombstoned (such a record has no stored state, only its proven leaf).
    /// @dev The event names the batch's patient, which the chain checked when the batch was anchored
    /// (the author held an amend grant from that patient); no caller can make it name anyone else.
    /// Requirements: the proof places the leaf in an anchored batch; the record was not
    /// tombstoned; the caller may read the batch's patient's records in the leaf's scope.
    /// Emits an {AccessRequested} event.
    /// @param record The batched record, with its proof.
    function requestBatchedAccess(IRecordRegistry.BatchedRecord calldata record) external;

    /// @notice Whether `reader` may read `patient`'s records in all of `scopes` now.
    /// @param patient The patient.
    /// @param reader The reader.
    /// @param scopes Category bitmask.
    /// @return True for the patient, an active member with an unexpired grant covering the
    /// scopes, or an active provider with confirmed, unexpired break-glass access.
    function canRead(address patient, address reader, uint64 scopes) external view returns (bool);

    /// @notice Whether `author` may write `patient`'s records in all of `scopes` now.
    /// @param patient The patient.
    /// @param author The author.
    /// @param scopes Category bitmask.
    /// @return True for the patient, or an active provider or lab with an unexpired amend grant
    /// covering the scopes.
    function canAmend(address patient, address author, uint64 scopes) external view returns (bool);

    /// @notice The nonce the next signed grant or revocation for this pair must carry.
    /// @param patient The signer.
    /// @param grantee The grantee.
    /// @return The current nonce.
    function nonces(address patient, address grantee) external view returns (uint256);

    /// @notice The stored grant from `patient` to `grantee` (zero when none).
    function getGrant(address patient, address grantee) external view returns (Grant memory);

    /// @notice The stored break-glass state of `requester` for `patient` (zero when none).
    function getBreakGlass(address patient, address requester) external view returns (BreakGlass memory);
}
