// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IClaimRegistry} from "./interfaces/IClaimRegistry.sol";
import {IClaimsGroth16Verifier} from "./interfaces/IClaimsGroth16Verifier.sol";
import {IRecordRegistry} from "./interfaces/IRecordRegistry.sol";
import {IConsentManager} from "./interfaces/IConsentManager.sol";
import {IConsortium} from "./interfaces/IConsortium.sol";

/// @title ClaimRegistry
/// @notice Claim commitments of records and on-chain checks of zero-knowledge proofs about them.
/// See {IClaimRegistry}.
/// @dev A separate contract rather than a field of RecordRegistry: writing a record stays as cheap
/// as it was, and only records with claims pay for one more slot. The public inputs of a proof are
/// rebuilt here from the record id, the verifier and the predicate, never taken from the caller,
/// so a proof made for one of them fails for any other.
contract ClaimRegistry is IClaimRegistry {
    uint256 private constant _FIELD =
        21888242871839275222246405745257275088548364400416034343698204186575808495617;
    uint256 private constant _SET = 8;

    IRecordRegistry private immutable _records;
    IConsortium private immutable _consortium;
    IConsentManager private immutable _consent;
    IClaimsGroth16Verifier private immutable _verifier;

    /// The patient and scope of a batched record with a commitment, for checks while the registry
    /// stores no state for it (it does only once the record is amended or tombstoned).
    struct BatchedClaim {
        address patient;
        uint64 scope;
    }

    mapping(bytes32 recordId => uint256 commitment) private _commitments;
    mapping(bytes32 recordId => BatchedClaim) private _batched;

    /// @param records_ The record registry (its consortium and consent manager are read from it).
    /// @param verifier_ The Groth16 verifier of this deployment's setup.
    constructor(IRecordRegistry records_, IClaimsGroth16Verifier verifier_) {
        _records = records_;
        _consortium = IConsortium(_records.consortium());
        _consent = IConsentManager(_records.consentManager());
        _verifier = verifier_;
    }

    /// @inheritdoc IClaimRegistry
    function commitClaims(bytes32 salt, uint256 commitment) external returns (bytes32 recordId) {
        recordId = _records.recordIdOf(msg.sender, salt);
        _commit(recordId, _activeRecord(recordId), commitment);
    }

    /// @inheritdoc IClaimRegistry
    function commitBatchedClaims(IRecordRegistry.BatchedRecord calldata record, uint256 commitment)
        external
        returns (bytes32 recordId)
    {
        IRecordRegistry.Record memory state;
        (recordId, state) = _records.resolveBatchedRecord(record);
        if (record.author != msg.sender) revert ClaimUnauthorizedAuthor(msg.sender, recordId);
        if (state.status != IRecordRegistry.Status.Active) revert ClaimRecordNotActive(recordId);
        _commit(recordId, state, commitment);
        _batched[recordId] = BatchedClaim({patient: state.patient, scope: state.scope});
    }

    function _commit(bytes32 recordId, IRecordRegistry.Record memory record, uint256 commitment) private {
        if (commitment == 0 || commitment >= _FIELD) revert ClaimInvalidCommitment(recordId);
        if (_commitments[recordId] != 0) revert ClaimAlreadyCommitted(recordId);
        bool member = _consortium.hasActiveRole(msg.sender, IConsortium.Role.Provider)
            || _consortium.hasActiveRole(msg.sender, IConsortium.Role.Lab);
        // A member writing about itself as a patient would be self-declaring; canAmend is true for the patient.
        if (!member || msg.sender == record.patient || !_consent.canAmend(record.patient, msg.sender, record.scope)) {
            revert ClaimUnauthorizedAuthor(msg.sender, recordId);
        }
        _commitments[recordId] = commitment;
        emit ClaimsCommitted(recordId, record.patient, msg.sender);
    }

    /// @inheritdoc IClaimRegistry
    function checkClaim(
        bytes32 recordId,
        address verifier_,
        bytes32 challenge,
        Predicate calldata predicate,
        Proof calldata proof
    ) public view returns (address patient, bytes32 predicateId) {
        IRecordRegistry.Record memory record = _activeRecord(recordId);
        patient = record.patient;
        uint64 allowed = _scopesOfKind(predicate.kind);
        if (record.scope == 0 || record.scope & ~allowed != 0) {
            revert ClaimKindOutOfScope(recordId, predicate.kind, record.scope);
        }
        uint256 commitment = _commitments[recordId];
        if (commitment == 0) revert ClaimNotCommitted(recordId);
        uint256[19] memory signals;
        signals[0] = commitment;
        signals[1] = uint256(recordId) >> 128;
        signals[2] = uint256(uint128(uint256(recordId)));
        signals[3] = bindingOf(verifier_, challenge);
        signals[4] = predicate.kind;
        signals[5] = predicate.unit;
        signals[6] = predicate.valueLo;
        signals[7] = predicate.valueHi;
        signals[8] = predicate.dateLo;
        signals[9] = predicate.dateHi;
        signals[10] = predicate.codeCheck ? 1 : 0;
        for (uint256 i = 0; i < _SET; ++i) {
            signals[11 + i] = predicate.codes[i];
        }
        if (!_verifier.verifyProof(proof.a, proof.b, proof.c, signals)) revert ClaimInvalidProof(recordId);
        predicateId = keccak256(abi.encode(predicate));
    }

    /// @inheritdoc IClaimRegistry
    function proveClaim(bytes32 recordId, bytes32 challenge, Predicate calldata predicate, Proof calldata proof)
        external
        returns (bytes32 predicateId)
    {
        address patient;
        (patient, predicateId) = checkClaim(recordId, msg.sender, challenge, predicate, proof);
        emit ClaimProven(recordId, msg.sender, patient, predicateId);
    }

    /// @inheritdoc IClaimRegistry
    function commitmentOf(bytes32 recordId) external view returns (uint256) {
        return _commitments[recordId];
    }

    /// @inheritdoc IClaimRegistry
    function bindingOf(address verifier_, bytes32 challenge) public view returns (uint256) {
        return uint256(keccak256(abi.encode(block.chainid, address(this), verifier_, challenge))) >> 8;
    }

    /// @inheritdoc IClaimRegistry
    function recordRegistry() external view returns (address) {
        return address(_records);
    }

    /// @inheritdoc IClaimRegistry
    function verifier() external view returns (address) {
        return address(_verifier);
    }

    /// The record categories a claim kind may come from (bits as in the client's Scope): an
    /// Observation from LAB, VITALS, PROCEDURES, IMAGING, MENTAL_HEALTH, SOCIAL_HISTORY or OTHER;
    /// an Immunization from IMMUNIZATIONS; a Patient from DEMOGRAPHICS; a Condition from
    /// CONDITIONS or MENTAL_HEALTH. Other kinds come from nowhere.
    function _scopesOfKind(uint8 kind) private pure returns (uint64) {
        if (kind == 1) return (1 << 1) | (1 << 2) | (1 << 5) | (1 << 7) | (1 << 9) | (1 << 13) | (1 << 15);
        if (kind == 2) return 1 << 11;
        if (kind == 3) return 1 << 0;
        if (kind == 4) return (1 << 3) | (1 << 9);
        return 0;
    }

    function _activeRecord(bytes32 recordId) private view returns (IRecordRegistry.Record memory record) {
        IRecordRegistry.Status status = _records.recordStatus(recordId);
        if (status == IRecordRegistry.Status.None) {
            BatchedClaim memory batched = _batched[recordId];
            if (batched.patient == address(0)) revert ClaimRecordNotFound(recordId);
            return IRecordRegistry.Record({
                patient: batched.patient, scope: batched.scope, status: IRecordRegistry.Status.Active
            });
        }
        if (status != IRecordRegistry.Status.Active) revert ClaimRecordNotActive(recordId);
        record = _records.getRecord(recordId);
    }
}
