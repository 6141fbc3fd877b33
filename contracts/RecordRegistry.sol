// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {IRecordRegistry} from "./interfaces/IRecordRegistry.sol";
import {IConsentManager} from "./interfaces/IConsentManager.sol";
import {ConsentManager} from "./ConsentManager.sol";
import {IConsortium} from "./interfaces/IConsortium.sol";

/// @title RecordRegistry
/// @notice Anchors hashes and pointers of encrypted records. See {IRecordRegistry}.
contract RecordRegistry is IRecordRegistry {
    IConsortium private immutable _consortium;
    IConsentManager private immutable _consent;

    mapping(address patient => bool) private _patients;
    mapping(bytes32 recordId => Record) private _records;
    mapping(bytes32 root => Batch) private _batches;

    /// @dev The registry and its consent manager refer to each other; creating the consent
    /// manager here lets both hold the other's address as an immutable, with no wiring step.
    /// @param consortium_ The membership contract.
    /// @param consentDomainName The EIP-712 domain name of the consent manager (what wallets show).
    constructor(IConsortium consortium_, string memory consentDomainName) {
        _consortium = consortium_;
        _consent = new ConsentManager(consortium_, this, consentDomainName);
    }

    /// @inheritdoc IRecordRegistry
    function registerPatient() external {
        if (_patients[msg.sender]) return;
        _patients[msg.sender] = true;
        emit PatientRegistered(msg.sender);
    }

    /// @inheritdoc IRecordRegistry
    function addRecord(bytes32 recordId, address patient, bytes32 contentHash, uint64 scope, bytes calldata cid)
        external
    {
        if (!_patients[patient]) revert RecordPatientNotRegistered(patient);
        if (scope == 0) revert RecordInvalidContent(recordId);
        _checkAuthor(patient, scope);
        _store(recordId, patient, contentHash, scope, cid, bytes32(0));
    }

    /// @inheritdoc IRecordRegistry
    function amendRecord(bytes32 previousId, bytes32 recordId, bytes32 contentHash, bytes calldata cid) external {
        Record storage previous = _records[previousId];
        Status status = previous.status;
        if (status == Status.None) revert RecordNotFound(previousId);
        if (status != Status.Active) revert RecordNotActive(previousId, status);
        address patient = previous.patient;
        uint64 scope = previous.scope;
        _checkAuthor(patient, scope);
        previous.status = Status.Superseded;
        _store(recordId, patient, contentHash, scope, cid, previousId);
        emit RecordAmended(previousId, recordId, msg.sender);
    }

    /// @inheritdoc IRecordRegistry
    function tombstone(bytes32 recordId) external {
        Record storage record = _records[recordId];
        Status status = record.status;
        if (status == Status.None) revert RecordNotFound(recordId);
        if (record.patient != msg.sender) revert RecordNotPatient(msg.sender, recordId);
        if (status == Status.Tombstoned) revert RecordNotActive(recordId, status);
        record.status = Status.Tombstoned;
        emit RecordTombstoned(recordId, msg.sender);
    }

    /// @inheritdoc IRecordRegistry
    function tombstoneBatched(bytes32 root, bytes32[] calldata proof, bytes32 recordId, bytes32 contentHash, uint64 scope)
        external
    {
        if (!_inBatch(root, proof, batchLeaf(recordId, msg.sender, contentHash, scope))) {
            revert RecordInvalidProof(root, recordId);
        }
        Status status = _records[recordId].status;
        if (status != Status.None) revert RecordNotActive(recordId, status);
        _records[recordId] = Record({patient: msg.sender, scope: scope, status: Status.Tombstoned});
        emit RecordTombstoned(recordId, msg.sender);
    }

    /// @inheritdoc IRecordRegistry
    function anchorBatch(bytes32 root, uint32 leafCount, bytes32 manifestHash, bytes calldata manifestCid) external {
        (IConsortium.Role role, bool suspended,) = _consortium.memberOf(msg.sender);
        if (suspended || (role != IConsortium.Role.Provider && role != IConsortium.Role.Lab)) {
            revert RecordUnauthorizedBatchAuthor(msg.sender);
        }
        if (root == bytes32(0) || leafCount == 0 || manifestHash == bytes32(0) || manifestCid.length == 0) {
            revert RecordInvalidBatch(root);
        }
        if (_batches[root].anchoredAt != 0) revert RecordInvalidBatch(root);
        _batches[root] = Batch({author: msg.sender, leafCount: leafCount, anchoredAt: uint64(block.timestamp)});
        emit BatchAnchored(root, msg.sender, leafCount, manifestHash, manifestCid);
    }

    /// @inheritdoc IRecordRegistry
    function verifyBatchedRecord(
        bytes32 root,
        bytes32[] calldata proof,
        bytes32 recordId,
        address patient,
        bytes32 contentHash,
        uint64 scope
    ) external view returns (bool) {
        return _inBatch(root, proof, batchLeaf(recordId, patient, contentHash, scope));
    }

    /// @inheritdoc IRecordRegistry
    function batchLeaf(bytes32 recordId, address patient, bytes32 contentHash, uint64 scope)
        public
        pure
        returns (bytes32)
    {
        return keccak256(bytes.concat(keccak256(abi.encode(recordId, patient, contentHash, scope))));
    }

    /// @inheritdoc IRecordRegistry
    function recordStatus(bytes32 recordId) external view returns (Status) {
        return _records[recordId].status;
    }

    /// @inheritdoc IRecordRegistry
    function getRecord(bytes32 recordId) external view returns (Record memory record) {
        record = _records[recordId];
        if (record.status == Status.None) revert RecordNotFound(recordId);
    }

    /// @inheritdoc IRecordRegistry
    function getBatch(bytes32 root) external view returns (Batch memory) {
        return _batches[root];
    }

    /// @inheritdoc IRecordRegistry
    function isPatient(address patient) external view returns (bool) {
        return _patients[patient];
    }

    /// @inheritdoc IRecordRegistry
    function consentManager() external view returns (address) {
        return address(_consent);
    }

    /// @inheritdoc IRecordRegistry
    function consortium() external view returns (address) {
        return address(_consortium);
    }

    function _inBatch(bytes32 root, bytes32[] calldata proof, bytes32 leaf) private view returns (bool) {
        return _batches[root].anchoredAt != 0 && MerkleProof.verifyCalldata(proof, root, leaf);
    }

    function _checkAuthor(address patient, uint64 scope) private view {
        if (msg.sender == patient) return;
        if (!_consent.canAmend(patient, msg.sender, scope)) revert RecordUnauthorizedAuthor(msg.sender, patient, scope);
    }

    function _store(
        bytes32 recordId,
        address patient,
        bytes32 contentHash,
        uint64 scope,
        bytes calldata cid,
        bytes32 previousId
    ) private {
        if (contentHash == bytes32(0) || cid.length == 0) revert RecordInvalidContent(recordId);
        if (recordId == bytes32(0) || _records[recordId].status != Status.None) revert RecordIdUnavailable(recordId);
        _records[recordId] = Record({patient: patient, scope: scope, status: Status.Active});
        emit RecordAdded(recordId, patient, msg.sender, contentHash, scope, previousId, cid);
    }
}
