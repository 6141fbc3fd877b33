// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {VM} from "./Vm.sol";
import {EhrChecks} from "./EhrInvariants.t.sol";
import {IConsentManager} from "../contracts/interfaces/IConsentManager.sol";

/// @notice The invariants have teeth: each test builds a small honest history through the handler
/// (the invariant holds), then makes the chain misbehave the way a bug would, by editing the
/// contracts' storage or granting behind the handler's back, and shows the invariant now fails.
/// Storage slots come from `forge inspect <Contract> storageLayout` (RecordRegistry._records is
/// slot 1, ConsentManager._grants slot 2, the Grant struct's fields as listed below); a layout change makes these tests fail, not pass.
contract InvariantTeethTest is EhrChecks {
    uint256 private constant RECORDS_SLOT = 1;
    uint256 private constant GRANTS_SLOT = 2;
    /// Grant is one slot: scopes (bits 0-63), expiresAt (64-127), access (128-135), nonce (136-175),
    /// grantNonce (176-215), purposeTag (216-255).
    uint256 private constant NONCE_BIT = 136;
    uint256 private constant GRANT_NONCE_BIT = 176;

    address private patient;
    address private provider;
    address private attacker;

    function setUp() public override {
        super.setUp();
        patient = handler.actors(0);
        provider = handler.actors(3);
        attacker = handler.actors(8);
        // The patient writes one record of scope 1 (salt 0) herself.
        handler.addRecord(0, 0, 0, 0, 1);
        require(handler.recordCount() == 1, "setup: no record");
    }

    function test_readWithoutGrantIsCaught() public {
        _holds(this.check_noReadWithoutCoveringGrant);
        // A bug that lets the provider read: the grant exists on chain but the patient never made it.
        IConsentManager consent = handler.consent();
        VM.prank(patient);
        consent.grant(provider, 1, IConsentManager.Access.Read, uint64(block.timestamp + 1 hours), "treatment");
        handler.requestAccess(3, 0, 0, false);
        _breaks(this.check_noReadWithoutCoveringGrant, "read without a covering grant");
    }

    function test_readOnRevokedGrantIsCaught() public {
        handler.grant(0, 0, 1, 1, 1 hours); // patient -> provider, Read, scope 1
        bytes32 slot = _grantSlot(patient, provider);
        bytes32 live = VM.load(address(handler.consent()), slot);
        handler.revoke(0, 3, false, false);
        _holds(this.check_revokedOrExpiredGrantNeverReads);
        // A revocation that does not take.
        VM.store(address(handler.consent()), slot, live);
        handler.requestAccess(3, 0, 2, false);
        _breaks(this.check_revokedOrExpiredGrantNeverReads, "read on a revoked grant");
    }

    function test_readOnExpiredGrantIsCaught() public {
        handler.grant(0, 0, 1, 1, 1 hours);
        handler.warp(2 hours - 1 + 1 hours); // past the grant's end
        _holds(this.check_revokedOrExpiredGrantNeverReads);
        // Expiry not enforced: the stored end moves into the future behind the patient's back.
        bytes32 slot = _grantSlot(patient, provider);
        uint256 word = uint256(VM.load(address(handler.consent()), slot));
        word = (word & ~(uint256(type(uint64).max) << 64)) | (uint256(block.timestamp + 1 days) << 64);
        VM.store(address(handler.consent()), slot, bytes32(word));
        handler.requestAccess(3, 0, 2, false);
        _breaks(this.check_revokedOrExpiredGrantNeverReads, "read on an expired grant");
    }

    /// The patient signs a grant and a revocation at the same nonce; the revocation is relayed
    /// first. A contract that forgets the revocation moved the nonce lets the grant in after it.
    function test_signedRevocationVoidedByEarlierGrantIsCaught() public {
        handler.grantBySig(0, 0, 1, 1, 1 hours, 2, false); // held: patient -> provider, Read, nonce 0
        handler.signRevocation(0, 0, 0, true); // held: the same pair, nonce 0
        handler.relayHeld(0, 1); // the revocation: nothing in force, voids grants signed at 0
        require(handler.nSignedRevokes() == 1, "setup: the revocation was not relayed");
        handler.relayHeld(0, 0); // the grant signed at 0: refused
        _holds(this.check_revokedOrExpiredGrantNeverReads);
        handler.grantBySig(0, 0, 1, 1, 1 hours, 2, false);
        handler.signRevocation(0, 0, 0, true);
        handler.relayHeld(0, 1); // nonce 1 -> 2
        // The nonce slips back to the one the held grant was signed at.
        bytes32 slot = _grantSlot(patient, provider);
        uint256 word = uint256(VM.load(address(handler.consent()), slot));
        word = (word & ~(uint256(type(uint40).max) << NONCE_BIT)) | (uint256(1) << NONCE_BIT);
        VM.store(address(handler.consent()), slot, bytes32(word));
        handler.relayHeld(0, 0);
        _breaks(this.check_revokedOrExpiredGrantNeverReads, "signed revocation voided by an earlier-signed grant");
    }

    /// The same two signatures relayed the other way round: the grant first, then the revocation,
    /// which must still end it. A contract that records the grant as decided later refuses it.
    function test_signedRevocationRefusedAfterEarlierGrantIsCaught() public {
        handler.grantBySig(0, 0, 1, 1, 1 hours, 2, false);
        handler.signRevocation(0, 0, 0, true);
        handler.relayHeld(0, 0); // the grant signed at 0: in force, nonce 1
        handler.relayHeld(0, 1); // the revocation signed at 0 ends it
        require(handler.nSignedRevokes() == 1 && handler.nRevokes() == 1, "setup: the revocation did not end the grant");
        _holds(this.check_revokedOrExpiredGrantNeverReads);
        handler.grantBySig(0, 0, 1, 1, 1 hours, 2, false); // at nonce 2
        handler.signRevocation(0, 0, 0, true);
        handler.relayHeld(0, 0); // in force, decided at 2
        // The grant in force is recorded as decided after the revocation was signed.
        bytes32 slot = _grantSlot(patient, provider);
        uint256 word = uint256(VM.load(address(handler.consent()), slot));
        word = (word & ~(uint256(type(uint40).max) << GRANT_NONCE_BIT)) | (uint256(3) << GRANT_NONCE_BIT);
        VM.store(address(handler.consent()), slot, bytes32(word));
        handler.relayHeld(0, 1);
        _breaks(this.check_revokedOrExpiredGrantNeverReads, "signed revocation voided by an earlier-signed grant");
    }

    function test_accessEventNamingAnotherPatientIsCaught() public {
        _holds(this.check_accessEventsNameThePatient);
        // The record's stored patient becomes the provider, who then reads it "as its patient".
        _setRecordPatient(handler.recordIds(0), provider);
        handler.requestAccess(3, 0, 0, false);
        _breaks(this.check_accessEventsNameThePatient, "AccessRequested names the wrong patient");
    }

    function test_changedScopeIsCaught() public {
        _holds(this.check_recordIdentityNeverChanges);
        bytes32 slot = keccak256(abi.encode(handler.recordIds(0), RECORDS_SLOT));
        uint256 word = uint256(VM.load(address(handler.registry()), slot));
        word = (word & ~(uint256(type(uint64).max) << 160)) | (uint256(8) << 160);
        VM.store(address(handler.registry()), slot, bytes32(word));
        _breaks(this.check_recordIdentityNeverChanges, "chain state differs from the ghost records");
    }

    function test_tombstoneByNonPatientIsCaught() public {
        _holds(this.check_onlyPatientTombstones);
        _setRecordPatient(handler.recordIds(0), attacker);
        handler.tombstone(8, 0, 1, false);
        _breaks(this.check_onlyPatientTombstones, "tombstone by someone other than the patient");
    }

    function test_reusedIdIsCaught() public {
        _holds(this.check_idsNeverReused);
        // The registry forgets the record; the same author and salt then anchor "again".
        VM.store(address(handler.registry()), keccak256(abi.encode(handler.recordIds(0), RECORDS_SLOT)), 0);
        handler.addRecord(0, 0, 0, 0, 1);
        _breaks(this.check_idsNeverReused, "id reused");
    }

    function test_batchWithoutAmendGrantIsCaught() public {
        _holds(this.check_writesNeedAnAmendGrant);
        IConsentManager consent = handler.consent();
        VM.prank(patient);
        consent.grant(provider, 15, IConsentManager.Access.Amend, uint64(block.timestamp + 1 hours), "treatment");
        handler.anchorBatch(3, 0, 0, 1, 0, false, 0);
        _breaks(this.check_writesNeedAnAmendGrant, "batch anchored without an amend grant");
    }

    function _holds(function() external view invariant) private view {
        invariant();
    }

    /// The check must fail, and for the reason the test provoked (its message starts with `what`).
    function _breaks(function() external view invariant, string memory what) private view {
        try invariant() {
            revert("the invariant did not notice the violation");
        } catch Error(string memory reason) {
            bytes memory r = bytes(reason);
            bytes memory w = bytes(what);
            require(r.length >= w.length, reason);
            for (uint256 i = 0; i < w.length; ++i) {
                require(r[i] == w[i], string.concat("failed for another reason: ", reason));
            }
        }
    }

    function _grantSlot(address p, address g) private pure returns (bytes32) {
        return keccak256(abi.encode(g, keccak256(abi.encode(p, GRANTS_SLOT))));
    }

    function _setRecordPatient(bytes32 id, address newPatient) private {
        bytes32 slot = keccak256(abi.encode(id, RECORDS_SLOT));
        uint256 word = uint256(VM.load(address(handler.registry()), slot));
        word = (word & ~uint256(type(uint160).max)) | uint256(uint160(newPatient));
        VM.store(address(handler.registry()), slot, bytes32(word));
    }
}
