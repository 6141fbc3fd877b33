// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {VM} from "./Vm.sol";
import {Consortium} from "../contracts/Consortium.sol";
import {RecordRegistry} from "../contracts/RecordRegistry.sol";
import {ConsentManager} from "../contracts/ConsentManager.sol";
import {IConsortium} from "../contracts/interfaces/IConsortium.sol";
import {IConsentManager} from "../contracts/interfaces/IConsentManager.sol";

/// @notice IConsentManager.grant says it "voids the patient's unrelayed signatures for this
/// grantee (grants and revocations alike)", but granting the same terms again returns before the
/// nonce moves, so signatures given out before that grant still work afterwards. Both tests fail.
contract ConsentNoOpGrantTest {
    uint256 private constant PATIENT_KEY = 0xA11CE;
    address private patient = VM.addr(PATIENT_KEY);
    address private provider = VM.addr(0xD0C);
    address private relayer = VM.addr(0xBEEF);
    ConsentManager private consent;
    uint64 private endsAt;

    function setUp() public {
        address[] memory govs = new address[](2);
        (govs[0], govs[1]) = (VM.addr(1), VM.addr(2));
        Consortium consortium = new Consortium(govs, 2);
        VM.prank(govs[0]);
        uint256 id = consortium.propose(IConsortium.Action.Admit, provider, uint8(IConsortium.Role.Provider), 1 days);
        VM.prank(govs[1]);
        consortium.approve(id);
        VM.prank(govs[1]);
        consortium.execute(id);
        consent = ConsentManager(new RecordRegistry(consortium, "EHR Consent (bug)").consentManager());
        VM.warp(1_750_000_000);
        endsAt = uint64(block.timestamp + 30 days);
        VM.prank(patient);
        consent.grant(provider, 1, IConsentManager.Access.Read, endsAt, "treatment");
    }

    /// The patient signs a revocation, changes her mind and confirms the grant herself; the
    /// revocation, relayed afterwards, still ends the grant she just confirmed.
    function test_revocationSignedBeforeAConfirmingGrantIsVoid() public {
        uint256 nonce = consent.nonces(patient, provider);
        uint64 validUntil = uint64(block.timestamp + 1 days);
        bytes memory signature =
            _sign(keccak256(abi.encode(consent.REVOKE_TYPEHASH(), patient, provider, nonce, validUntil)));
        VM.prank(patient);
        consent.grant(provider, 1, IConsentManager.Access.Read, endsAt, "treatment"); // same terms
        VM.prank(relayer);
        try consent.revokeBySig(patient, provider, nonce, validUntil, signature) {
            revert("a revocation signed before the patient's own grant ended that grant");
        } catch {}
    }

    /// A grant with other terms, signed before the patient's own (same-terms) grant, replaces it.
    function test_grantSignedBeforeAConfirmingGrantIsVoid() public {
        uint256 nonce = consent.nonces(patient, provider);
        uint64 validUntil = uint64(block.timestamp + 1 days);
        // Categories: demographics yes, the other 14 no.
        bytes memory flags = abi.encode(consent.CATEGORIES_TYPEHASH(), true);
        for (uint256 i = 0; i < 14; ++i) {
            flags = bytes.concat(flags, abi.encode(false));
        }
        bytes32 categories = keccak256(flags);
        bytes memory signature = _sign(keccak256(abi.encode(consent.GRANT_TYPEHASH(), patient, provider, categories,
            true, keccak256("research"), endsAt + 300 days, nonce, validUntil)));
        VM.prank(patient);
        consent.grant(provider, 1, IConsentManager.Access.Read, endsAt, "treatment"); // same terms
        VM.prank(relayer);
        try consent.grantBySig(patient, provider, 1, true, "research", endsAt + 300 days, validUntil, signature) {
            revert("a grant signed before the patient's own grant replaced it");
        } catch {}
    }

    function _sign(bytes32 structHash) private view returns (bytes memory) {
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", consent.DOMAIN_SEPARATOR(), structHash));
        (uint8 v, bytes32 r, bytes32 s) = VM.sign(PATIENT_KEY, digest);
        return abi.encodePacked(r, s, v);
    }
}
