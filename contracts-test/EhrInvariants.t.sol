// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {FuzzSelector} from "./Vm.sol";
import {EhrHandler} from "./EhrHandler.sol";

/// @notice The consent and record-model invariants of issue 12 as checks over {EhrHandler}'s
/// ghost state and the chain. Each fails with the first violation the handler saw, so a failing
/// run says what broke. EhrInvariantsTest fuzzes them; InvariantTeethTest shows they catch faults.
abstract contract EhrChecks {
    EhrHandler internal handler;

    function setUp() public virtual {
        handler = new EhrHandler();
    }

    /// Every read the chain accepted was by the patient, by a member whose unexpired grant covered
    /// the record's scope, or by a provider with confirmed, unexpired break-glass access.
    function check_noReadWithoutCoveringGrant() public view {
        _zero(handler.readsUncovered(), "read without a covering grant");
        _zero(handler.readsOfErased(), "read of an erased record");
        for (uint256 i = 0; i < handler.readFactCount(); ++i) {
            require(handler.readFact(i).basis != EhrHandler.Basis.None, "a recorded read had no basis");
        }
    }

    /// A revoked or expired grant never reads, and the chain never reports one as readable. A
    /// revocation the patient signed at nonce n is never voided by relaying a grant signed at n or
    /// earlier, before or after it (issue 13).
    function check_revokedOrExpiredGrantNeverReads() public view {
        _zero(handler.readsRevoked(), "read on a revoked grant");
        _zero(handler.readsExpired(), "read on an expired grant");
        _zero(handler.revocationsVoided(), "signed revocation voided by an earlier-signed grant");
        _zero(handler.grantMismatches(), "stored grants differ from the patients' decisions");
        _zero(handler.badGrants(), "grant or revocation the patient did not make");
    }

    /// Every AccessRequested names the record's patient and the caller as reader, for a real record.
    function check_accessEventsNameThePatient() public view {
        _zero(handler.readsWrongPatient(), "AccessRequested names the wrong patient");
        _zero(handler.readsWrongReader(), "AccessRequested names the wrong reader");
        _zero(handler.readsUnknownRecord(), "AccessRequested for an unknown record");
        _zero(handler.forgedAccepted(), "forged batched record accepted");
        for (uint256 i = 0; i < handler.readFactCount(); ++i) {
            EhrHandler.ReadFact memory f = handler.readFact(i);
            (address patient,,,,,,,,) = handler.ghost(f.recordId);
            require(f.patient == patient, "a recorded read names the wrong patient");
        }
    }

    /// A record's patient, scope and author never change; its status only moves forward.
    function check_recordIdentityNeverChanges() public view {
        _zero(handler.identityChanged(), "record identity changed");
        _zero(handler.illegalTransitions(), "illegal status transition");
        _zero(handler.recordMismatches(), "chain state differs from the ghost records");
        // The author is bound into the id: an id still derived from the recorded author is that author's.
        _zero(handler.idMismatches(), "an id no longer derived from the author who anchored it");
    }

    /// Only the patient tombstones.
    function check_onlyPatientTombstones() public view {
        _zero(handler.tombstonesByNonPatient(), "tombstone by someone other than the patient");
        _zero(handler.tombstonesNotByPatient(), "a tombstoned record not erased by its patient");
    }

    /// No id is used twice: single and batched ids never collide, every id is the one derived
    /// from its author, a batched record always resolves to the id it was anchored under, and
    /// `anchoredNear` names the blocks of every record's event (a batched one's: its batch's).
    function check_idsNeverReused() public view {
        _zero(handler.idsReused(), "id reused");
        _zero(
            handler.idMismatches(),
            "an id not derived from its author, a batched record resolving elsewhere, or anchoredNear not naming its event"
        );
    }

    /// No record or batch is anchored by anyone but the patient or an author with an amend grant
    /// covering its scopes; break-glass and governance follow their rules.
    function check_writesNeedAnAmendGrant() public view {
        _zero(handler.unauthorisedBatches(), "batch anchored without an amend grant");
        _zero(handler.unauthorisedWrites(), "record written without an amend grant");
        _zero(handler.badBreakGlass(), "break-glass outside its rules");
        _zero(handler.badGovernance(), "governance outside its rules");
    }

    function _zero(uint256 count, string memory what) internal view {
        if (count != 0) revert(string.concat(what, ": ", handler.firstViolation()));
    }
}

/// @notice The checks above fuzzed by forge's invariant runner through {EhrHandler}
/// (foundry.toml fixes the seed, the runs and the depth).
contract EhrInvariantsTest is EhrChecks {
    function invariant_noReadWithoutCoveringGrant() public view {
        check_noReadWithoutCoveringGrant();
    }

    function invariant_revokedOrExpiredGrantNeverReads() public view {
        check_revokedOrExpiredGrantNeverReads();
    }

    function invariant_accessEventsNameThePatient() public view {
        check_accessEventsNameThePatient();
    }

    function invariant_recordIdentityNeverChanges() public view {
        check_recordIdentityNeverChanges();
    }

    function invariant_onlyPatientTombstones() public view {
        check_onlyPatientTombstones();
    }

    function invariant_idsNeverReused() public view {
        check_idsNeverReused();
    }

    function invariant_writesNeedAnAmendGrant() public view {
        check_writesNeedAnAmendGrant();
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    function targetSelectors() public view returns (FuzzSelector[] memory selectors) {
        bytes4[] memory s = new bytes4[](18);
        s[0] = EhrHandler.registerPatient.selector;
        s[1] = EhrHandler.addRecord.selector;
        s[2] = EhrHandler.amendRecord.selector;
        s[3] = EhrHandler.tombstone.selector;
        s[4] = EhrHandler.anchorBatch.selector;
        s[5] = EhrHandler.requestAccess.selector;
        s[6] = EhrHandler.forgeBatched.selector;
        s[7] = EhrHandler.grant.selector;
        s[8] = EhrHandler.grantBySig.selector;
        s[9] = EhrHandler.revoke.selector;
        s[10] = EhrHandler.cancelSignatures.selector;
        s[11] = EhrHandler.openBreakGlass.selector;
        s[12] = EhrHandler.confirmBreakGlass.selector;
        s[13] = EhrHandler.suspend.selector;
        s[14] = EhrHandler.reinstate.selector;
        s[15] = EhrHandler.warp.selector;
        s[16] = EhrHandler.signRevocation.selector;
        s[17] = EhrHandler.relayHeld.selector;
        selectors = new FuzzSelector[](1);
        selectors[0] = FuzzSelector(address(handler), s);
    }
}
