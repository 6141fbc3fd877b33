// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {IConsentManager} from "./interfaces/IConsentManager.sol";
import {IConsortium} from "./interfaces/IConsortium.sol";
import {IRecordRegistry} from "./interfaces/IRecordRegistry.sol";

/// @title ConsentManager
/// @notice Patient-controlled grants, signed consent, break-glass and audited access requests.
/// See {IConsentManager}.
/// @dev Signature nonces are kept per (patient, grantee) inside the grant's own storage slot rather
/// than in OpenZeppelin `Nonces` (one counter per owner in a slot of its own): a signed consent is
/// then one SSTORE instead of two, which saves 5,000 gas on every signed grant and 22,100 on a
/// patient's first. Every signature binds the pair's current nonce, and every grant, revocation
/// or cancellation for the pair moves it on, so no signature works twice or outlives a later
/// decision of the patient; a revocation keeps the nonce in the slot. The slot also keeps the
/// nonce the grant in force was decided at, so a revocation signed at nonce n wins over every
/// grant signed at n or earlier, whichever a relayer submits first; nonces are 40 bits and
/// a 5-byte tag of the purpose lets "same terms twice" stay a no-op, to keep all of it one slot.
contract ConsentManager is IConsentManager, EIP712 {
    /// @notice How long confirmed break-glass access lasts.
    uint64 public constant BREAK_GLASS_WINDOW = 1 hours;
    /// @notice How long a break-glass request waits for a second provider.
    uint64 public constant BREAK_GLASS_CONFIRM_WINDOW = 15 minutes;

    /// @dev What a wallet shows: each category by name with yes/no, read or amend in words, what the
    /// grant is for, when it ends and (separately) until when the signature may be relayed.
    bytes32 public constant GRANT_TYPEHASH = keccak256(
        "Grant(address patient,address grantee,Categories categories,bool mayAmend,string purpose,uint64 grantEndsAt,uint256 nonce,uint64 signatureValidUntil)"
        "Categories(bool demographics,bool lab,bool vitals,bool conditions,bool medications,bool procedures,bool encounters,bool imaging,bool genomics,bool mentalHealth,bool documents,bool immunizations,bool carePlans,bool socialHistory,bool other)"
    );
    bytes32 public constant CATEGORIES_TYPEHASH = keccak256(
        "Categories(bool demographics,bool lab,bool vitals,bool conditions,bool medications,bool procedures,bool encounters,bool imaging,bool genomics,bool mentalHealth,bool documents,bool immunizations,bool carePlans,bool socialHistory,bool other)"
    );
    bytes32 public constant REVOKE_TYPEHASH =
        keccak256("Revoke(address patient,address grantee,uint256 nonce,uint64 signatureValidUntil)");
    /// @notice The scope bits that have a named category in {CATEGORIES_TYPEHASH} (0-13 and 15).
    uint64 public constant NAMED_SCOPES = 0xBFFF;

    /// @dev `signedAt` of a decision the patient sent as their own transaction.
    uint256 private constant _UNSIGNED = type(uint256).max;

    /// @dev Where `_grant` finds the fields of a packed `Grant` slot; the terms are every field but the nonces.
    uint256 private constant _NONCE_SHIFT = 136;
    uint256 private constant _GRANT_NONCE_SHIFT = 176;
    uint256 private constant _TERMS_MASK = ~(uint256(type(uint80).max) << _NONCE_SHIFT);

    IConsortium private immutable _consortium;
    IRecordRegistry private immutable _records;

    mapping(address patient => mapping(address grantee => Grant)) private _grants;
    mapping(address patient => mapping(address requester => BreakGlass)) private _breakGlass;

    /// @param consortium_ The membership contract.
    /// @param records_ The record registry whose records this contract guards.
    /// @param name_ The EIP-712 domain name a wallet shows: the consortium and deployment.
    constructor(IConsortium consortium_, IRecordRegistry records_, string memory name_) EIP712(name_, "2") {
        _consortium = consortium_;
        _records = records_;
    }

    /// @inheritdoc IConsentManager
    function grant(address grantee, uint64 scopes, Access access, uint64 expiresAt, string calldata purpose) external {
        _grant(msg.sender, grantee, scopes, access, expiresAt, keccak256(bytes(purpose)), _UNSIGNED);
    }

    /// @inheritdoc IConsentManager
    function grantBySig(
        address patient,
        address grantee,
        uint64 scopes,
        bool mayAmend,
        string calldata purpose,
        uint64 grantEndsAt,
        uint64 signatureValidUntil,
        bytes calldata signature
    ) external {
        if (block.timestamp > signatureValidUntil) revert ConsentSignatureExpired(signatureValidUntil);
        Access access = mayAmend ? Access.Amend : Access.Read;
        // A bit without a named category would be granted without the wallet showing it.
        if (scopes & ~NAMED_SCOPES != 0) revert ConsentInvalidTerms(scopes, access, grantEndsAt);
        uint40 nonce = _grants[patient][grantee].nonce;
        bytes32 purposeHash = keccak256(bytes(purpose));
        bytes32 structHash = keccak256(
            abi.encode(
                GRANT_TYPEHASH,
                patient,
                grantee,
                _categoriesHash(scopes),
                mayAmend,
                purposeHash,
                grantEndsAt,
                nonce,
                signatureValidUntil
            )
        );
        _checkSigner(patient, structHash, signature);
        _checkRelayedGrantee(grantee, mayAmend);
        _grant(patient, grantee, scopes, access, grantEndsAt, purposeHash, nonce);
    }

    /// @inheritdoc IConsentManager
    function revoke(address grantee) external {
        _revoke(msg.sender, grantee, _UNSIGNED);
    }

    /// @inheritdoc IConsentManager
    function revokeBySig(
        address patient,
        address grantee,
        uint256 nonce,
        uint64 signatureValidUntil,
        bytes calldata signature
    ) external {
        if (block.timestamp > signatureValidUntil) revert ConsentSignatureExpired(signatureValidUntil);
        _checkSigner(
            patient, keccak256(abi.encode(REVOKE_TYPEHASH, patient, grantee, nonce, signatureValidUntil)), signature
        );
        // A nonce the pair has not reached yet was never handed out by `nonces`.
        if (nonce > _grants[patient][grantee].nonce) revert ConsentInvalidSignature(patient);
        _revoke(patient, grantee, nonce);
    }

    /// @inheritdoc IConsentManager
    function cancelSignatures(address grantee) external {
        Grant storage current = _grants[msg.sender][grantee];
        uint40 nonce = _nextNonce(current.nonce);
        current.nonce = nonce;
        // The grant in force now counts as decided at the new nonce: revocations signed before
        // this call are void too.
        if (current.access != Access.None) current.grantNonce = nonce;
        emit SignaturesCancelled(msg.sender, grantee, nonce);
    }

    /// @inheritdoc IConsentManager
    function openBreakGlass(address patient, uint8 reason) external {
        if (!_consortium.hasActiveRole(msg.sender, IConsortium.Role.Provider)) {
            revert ConsentBreakGlassNotProvider(msg.sender);
        }
        if (reason == 0) revert ConsentBreakGlassInvalidReason(reason);
        _breakGlass[patient][msg.sender] =
            BreakGlass({requestedAt: uint64(block.timestamp), expiresAt: 0, reason: reason});
        emit BreakGlassRequested(patient, msg.sender, reason);
    }

    /// @inheritdoc IConsentManager
    function confirmBreakGlass(address patient, address requester) external {
        if (!_consortium.hasActiveRole(msg.sender, IConsortium.Role.Provider)) {
            revert ConsentBreakGlassNotProvider(msg.sender);
        }
        if (msg.sender == requester) revert ConsentBreakGlassSameProvider(msg.sender);
        BreakGlass storage request = _breakGlass[patient][requester];
        if (
            request.requestedAt == 0 || request.expiresAt != 0
                || block.timestamp > request.requestedAt + BREAK_GLASS_CONFIRM_WINDOW
        ) revert ConsentBreakGlassNotPending(patient, requester);
        uint64 expiresAt = uint64(block.timestamp) + BREAK_GLASS_WINDOW;
        request.expiresAt = expiresAt;
        emit BreakGlassActivated(patient, requester, msg.sender, request.reason, expiresAt);
    }

    /// @inheritdoc IConsentManager
    function requestAccess(bytes32 recordId) external {
        IRecordRegistry.Record memory record = _records.getRecord(recordId);
        if (record.status == IRecordRegistry.Status.Tombstoned) revert ConsentRecordErased(recordId);
        _recordAccess(recordId, record.patient, record.scope);
    }

    /// @inheritdoc IConsentManager
    function requestBatchedAccess(IRecordRegistry.BatchedRecord calldata record) external {
        (bytes32 recordId, IRecordRegistry.Record memory state) = _records.resolveBatchedRecord(record);
        if (state.status == IRecordRegistry.Status.Tombstoned) revert ConsentRecordErased(recordId);
        _recordAccess(recordId, state.patient, state.scope);
    }

    function _recordAccess(bytes32 recordId, address patient, uint64 scope) private {
        if (msg.sender == patient) {
            emit AccessRequested(recordId, patient, msg.sender, false);
            return;
        }
        bool member = _consortium.isActiveMember(msg.sender);
        if (member && _grantCovers(_grants[patient][msg.sender], scope, Access.Read)) {
            emit AccessRequested(recordId, patient, msg.sender, false);
        } else if (member && _breakGlassActive(patient, msg.sender)) {
            emit AccessRequested(recordId, patient, msg.sender, true);
        } else {
            revert ConsentUnauthorized(msg.sender, recordId);
        }
    }

    /// @inheritdoc IConsentManager
    function canRead(address patient, address reader, uint64 scopes) external view returns (bool) {
        if (reader == patient) return true;
        if (!_consortium.isActiveMember(reader)) return false;
        return _grantCovers(_grants[patient][reader], scopes, Access.Read) || _breakGlassActive(patient, reader);
    }

    /// @inheritdoc IConsentManager
    function canAmend(address patient, address author, uint64 scopes) external view returns (bool) {
        if (author == patient) return true;
        if (!_grantCovers(_grants[patient][author], scopes, Access.Amend)) return false;
        (IConsortium.Role role, bool suspended,) = _consortium.memberOf(author);
        return !suspended && (role == IConsortium.Role.Provider || role == IConsortium.Role.Lab);
    }

    /// @inheritdoc IConsentManager
    function getGrant(address patient, address grantee) external view returns (Grant memory) {
        return _grants[patient][grantee];
    }

    /// @inheritdoc IConsentManager
    function getBreakGlass(address patient, address requester) external view returns (BreakGlass memory) {
        return _breakGlass[patient][requester];
    }

    /// @inheritdoc IConsentManager
    function nonces(address patient, address grantee) external view returns (uint256) {
        return _grants[patient][grantee].nonce;
    }

    /// @notice The EIP-712 domain separator for this chain and contract.
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @dev `signedAt` is the nonce the patient's signature carried, or `_UNSIGNED` for the
    /// patient's own transaction, which outranks every signature given out before it.
    function _grant(
        address patient,
        address grantee,
        uint64 scopes,
        Access access,
        uint64 expiresAt,
        bytes32 purposeHash,
        uint256 signedAt
    ) private {
        if (scopes == 0 || access == Access.None || expiresAt <= block.timestamp) {
            revert ConsentInvalidTerms(scopes, access, expiresAt);
        }
        // The grantee's membership is checked whenever it acts, not for the patient's own grant
        // (see {IConsentManager-grant}); a signed grant checks it when relayed (grantBySig).
        if (grantee == patient) revert ConsentInvalidGrantee(grantee);

        // The whole slot is read once and written once (field by field, the compiler reads and
        // writes the shared slot again for every field). Bit layout as Solidity packs `Grant`:
        // scopes 0-63, expiresAt 64-127, access 128-135, nonce 136-175, grantNonce 176-215, purposeTag 216-255.
        Grant storage current = _grants[patient][grantee];
        uint256 previous;
        assembly ("memory-safe") {
            previous := sload(current.slot)
        }
        // Every grant, even one that repeats the terms in force, and every signature used, moves the
        // pair's nonce on: a grant or revocation the patient signed earlier and never relayed cannot
        // undo a later decision (a same-terms grant is a decision too: it confirms them). The grant
        // remembers the nonce it was decided at, so a revocation signed at that nonce or later
        // still ends it whichever of the two was relayed first.
        uint40 nonce = _nextNonce(uint40(previous >> _NONCE_SHIFT));
        uint40 decidedAt = signedAt == _UNSIGNED ? nonce : uint40(signedAt);
        uint256 terms = uint256(scopes) | (uint256(expiresAt) << 64) | (uint256(uint8(access)) << 128)
            | uint256(bytes32(bytes5(purposeHash)));
        uint256 word = terms | (uint256(nonce) << _NONCE_SHIFT) | (uint256(decidedAt) << _GRANT_NONCE_SHIFT);
        assembly ("memory-safe") {
            sstore(current.slot, word)
        }
        if (previous & _TERMS_MASK != terms) emit AccessGranted(patient, grantee, scopes, access, expiresAt, purposeHash);
    }

    /// @dev A signature is an offer whose relay time someone else picks (the grantee, even): it is
    /// taken up only by an active member, or a grant relayed during a suspension would open at
    /// reinstatement, after the signature itself expired.
    function _checkRelayedGrantee(address grantee, bool mayAmend) private view {
        (IConsortium.Role role, bool suspended,) = _consortium.memberOf(grantee);
        if (
            role == IConsortium.Role.None || suspended
                || (mayAmend && role != IConsortium.Role.Provider && role != IConsortium.Role.Lab)
        ) revert ConsentInvalidGrantee(grantee);
    }

    /// @dev `signedAt` as in {_grant}. A revocation signed at nonce n ends a grant decided at n or
    /// earlier, and voids grants signed at n that were not relayed yet.
    function _revoke(address patient, address grantee, uint256 signedAt) private {
        Grant storage current = _grants[patient][grantee];
        uint40 nonce = current.nonce;
        if (current.access == Access.None) {
            if (signedAt != nonce) revert ConsentNoGrant(patient, grantee);
            // Nothing in force yet, but a grant signed at this nonce may be waiting to be relayed:
            // the revocation still voids it.
            nonce = _nextNonce(nonce);
            current.nonce = nonce;
            emit SignaturesCancelled(patient, grantee, nonce);
            return;
        }
        if (signedAt != _UNSIGNED) {
            if (current.grantNonce > signedAt) revert ConsentRevocationSuperseded(patient, grantee, signedAt);
            if (signedAt == nonce) nonce = _nextNonce(nonce);
        } else {
            nonce = _nextNonce(nonce);
        }
        _grants[patient][grantee] = Grant({
            scopes: 0, expiresAt: 0, access: Access.None, nonce: nonce, grantNonce: 0, purposeTag: bytes5(0)
        });
        emit AccessRevoked(patient, grantee);
    }

    function _nextNonce(uint40 nonce) private pure returns (uint40) {
        // One step per consent action of one patient for one grantee: 2^40 of them cannot happen.
        unchecked {
            return nonce + 1;
        }
    }

    /// @dev hashStruct(Categories): one bool word per named category, in bit order (bit 14 has no
    /// category and is refused before this is called). Written in assembly over scratch memory past
    /// the free pointer (never allocated, never read after): it is on the path of every signed grant.
    function _categoriesHash(uint64 scopes) private pure returns (bytes32 result) {
        bytes32 typehash = CATEGORIES_TYPEHASH;
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, typehash)
            for { let bit := 0 } lt(bit, 14) { bit := add(bit, 1) } {
                mstore(add(ptr, mul(add(bit, 1), 0x20)), and(shr(bit, scopes), 1))
            }
            mstore(add(ptr, 0x1e0), and(shr(15, scopes), 1))
            result := keccak256(ptr, 0x200)
        }
    }

    function _checkSigner(address patient, bytes32 structHash, bytes calldata signature) private view {
        (address signer, ECDSA.RecoverError error,) = ECDSA.tryRecover(_hashTypedDataV4(structHash), signature);
        if (error != ECDSA.RecoverError.NoError || signer != patient || patient == address(0)) {
            revert ConsentInvalidSignature(patient);
        }
    }

    function _grantCovers(Grant memory g, uint64 scopes, Access needed) private view returns (bool) {
        return scopes != 0 && g.access >= needed && g.expiresAt > block.timestamp && (g.scopes & scopes) == scopes;
    }

    function _breakGlassActive(address patient, address requester) private view returns (bool) {
        return _breakGlass[patient][requester].expiresAt > block.timestamp
            && _consortium.hasActiveRole(requester, IConsortium.Role.Provider);
    }
}
