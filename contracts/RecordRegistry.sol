// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IRecordRegistry} from "./interfaces/IRecordRegistry.sol";
import {IConsentManager} from "./interfaces/IConsentManager.sol";
import {ConsentManager} from "./ConsentManager.sol";
import {IConsortium} from "./interfaces/IConsortium.sol";

/// @title RecordRegistry
/// @notice Anchors hashes and pointers of encrypted records. See {IRecordRegistry}.
/// @dev Gas: a batch stores one slot (the commitment to root, patient, scopes and leaf count) and
/// checks the author's right once for the union of its scopes, so anchoring stays a fixed cost per
/// batch. A batched record gets a slot of its own only when it is amended or tombstoned. Leaves
/// sit at fixed positions (not OpenZeppelin's sorted-pair tree), so one position holds one leaf
/// and a batched id can never stand for two different records.
/// A batched record id starts with its batch's id (12 bytes), and the batch's slot, keyed by that
/// id, also says which 256 blocks hold its `BatchAnchored` event: a reader goes from any record id
/// to the one event that describes it with one view call and one bounded log query, and an id that
/// names no batch is refused without any log query.
contract RecordRegistry is IRecordRegistry {
    uint8 private constant _SINGLE = 1;
    uint8 private constant _BATCHED = 2;
    uint8 private constant _BATCH = 3;
    /// @dev A batch holds at most 1,024 leaves (depth 10): the gas per record is already flat well
    /// below it, and a proof stays at most 10 hashes.
    uint32 private constant _MAX_LEAVES = 1 << 10;
    /// @dev A hint (`Stored.anchoredNear`, the low 3 bytes of a batch's slot) is
    /// ((block >> _HINT_SHIFT) mod _HINT_PERIOD) + 1 of the block of a record's `RecordAdded` or a
    /// batch's `BatchAnchored` event: 1 to 2^24 - 1, 0 for none. `anchoredNear` rebuilds the range as
    /// the last one at or before the head with that residue, exact for events under 2^32 blocks old.
    uint256 private constant _HINT_SHIFT = 8;
    uint256 private constant _HINT_PERIOD = (1 << 24) - 1;
    uint256 private constant _HINT_BITS = 24;
    uint256 private constant _HINT_MASK = (1 << 24) - 1;
    /// @dev A batch id is the leading 12 bytes of its hash (the rest zero); a batched record id is
    /// that, then the leaf index (4 bytes), then the last 16 bytes of the leaf's own hash.
    bytes32 private constant _BATCH_ID_MASK = bytes32(~uint256(0) << 160);
    bytes32 private constant _LEAF_CHECK_MASK = bytes32(uint256(type(uint128).max));

    /// @dev A record's state, and in the 3 bytes its slot has left, where its `RecordAdded` event
    /// is (0: none, a batched record): a read by id then asks the node for 256 blocks, not the chain.
    struct Stored {
        address patient;
        uint64 scope;
        Status status;
        uint24 anchoredNear;
    }

    IConsortium private immutable _consortium;
    IConsentManager private immutable _consent;

    mapping(address patient => bool) private _patients;
    mapping(bytes32 recordId => Stored) private _records;
    /// @dev The batch's commitment (its leading 29 bytes) and, in the low 3 bytes, the hint of its
    /// `BatchAnchored` event: one slot, written once, never zero for an anchored batch.
    mapping(bytes32 batchId => uint256 commitmentAndHint) private _batches;

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
    function addRecord(bytes32 salt, address patient, bytes32 contentHash, uint64 scope, bytes calldata cid)
        external
        returns (bytes32 recordId)
    {
        recordId = recordIdOf(msg.sender, salt);
        if (!_patients[patient]) revert RecordPatientNotRegistered(patient);
        if (scope == 0) revert RecordInvalidContent(recordId);
        _checkAuthor(patient, scope);
        _store(recordId, patient, contentHash, scope, cid, bytes32(0));
    }

    /// @inheritdoc IRecordRegistry
    function amendRecord(bytes32 previousId, bytes32 salt, bytes32 contentHash, bytes calldata cid)
        external
        returns (bytes32 recordId)
    {
        Stored storage previous = _records[previousId];
        if (previous.status == Status.None) revert RecordNotFound(previousId);
        recordId = _amend(previousId, previous, salt, contentHash, cid);
    }

    /// @inheritdoc IRecordRegistry
    function amendBatchedRecord(BatchedRecord calldata previous, bytes32 salt, bytes32 contentHash, bytes calldata cid)
        external
        returns (bytes32 recordId)
    {
        (bytes32 previousId, Stored storage stored) = _materialize(previous);
        recordId = _amend(previousId, stored, salt, contentHash, cid);
    }

    /// @inheritdoc IRecordRegistry
    function tombstone(bytes32 recordId) external {
        Stored storage record = _records[recordId];
        if (record.status == Status.None) revert RecordNotFound(recordId);
        _tombstone(recordId, record);
    }

    /// @inheritdoc IRecordRegistry
    function tombstoneBatchedRecord(BatchedRecord calldata record) external {
        (bytes32 recordId, Stored storage stored) = _materialize(record);
        _tombstone(recordId, stored);
    }

    /// @inheritdoc IRecordRegistry
    function anchorBatch(
        bytes32 batchKey,
        address patient,
        uint64 scopes,
        bytes32 root,
        uint32 leafCount,
        bytes32 manifestHash,
        bytes calldata manifestCid
    ) external returns (bytes32 batchId) {
        batchId = batchIdOf(msg.sender, batchKey);
        if (!_patients[patient]) revert RecordPatientNotRegistered(patient);
        if (
            root == bytes32(0) || scopes == 0 || leafCount == 0 || leafCount > _MAX_LEAVES
                || manifestHash == bytes32(0) || manifestCid.length == 0 || _batches[batchId] != 0
        ) revert RecordInvalidBatch(batchId);
        _checkAuthor(patient, scopes);
        uint256 anchored = uint256(keccak256(abi.encode(root, patient, scopes, leafCount)));
        // The commitment's leading 29 bytes and the hint (see `_HINT_SHIFT`; at most 2^24 - 1, so the
        // add cannot overflow), in assembly: Solidity's checked arithmetic here cost about 110 gas.
        assembly ("memory-safe") {
            anchored := or(and(anchored, not(_HINT_MASK)), add(mod(shr(_HINT_SHIFT, number()), _HINT_PERIOD), 1))
        }
        _batches[batchId] = anchored;
        emit BatchAnchored(batchId, msg.sender, patient, batchKey, root, scopes, leafCount, manifestHash, manifestCid);
    }

    /// @inheritdoc IRecordRegistry
    function resolveBatchedRecord(BatchedRecord calldata record)
        external
        view
        returns (bytes32 recordId, Record memory state)
    {
        recordId = _verifyBatched(record);
        Stored storage stored = _records[recordId];
        state = stored.status == Status.None
            ? Record({patient: record.patient, scope: record.scope, status: Status.Active})
            : Record({patient: stored.patient, scope: stored.scope, status: stored.status});
    }

    /// @inheritdoc IRecordRegistry
    function recordIdOf(address author, bytes32 salt) public pure returns (bytes32) {
        return keccak256(abi.encode(_SINGLE, author, salt));
    }

    /// @inheritdoc IRecordRegistry
    function batchedRecordIdOf(address author, bytes32 batchKey, uint32 index) public pure returns (bytes32) {
        return _batchedRecordIdIn(batchIdOf(author, batchKey), author, batchKey, index);
    }

    /// @inheritdoc IRecordRegistry
    function batchIdOf(address author, bytes32 batchKey) public pure returns (bytes32) {
        return keccak256(abi.encode(_BATCH, author, batchKey)) & _BATCH_ID_MASK;
    }

    /// @inheritdoc IRecordRegistry
    function recordStatus(bytes32 recordId) external view returns (Status) {
        return _records[recordId].status;
    }

    /// @inheritdoc IRecordRegistry
    function anchoredNear(bytes32 recordId)
        external
        view
        returns (Status status, uint256 fromBlock, uint256 toBlock, bytes32 batchId)
    {
        Stored storage stored = _records[recordId];
        status = stored.status;
        uint256 hint = stored.anchoredNear;
        if (hint == 0) {
            batchId = recordId & _BATCH_ID_MASK;
            hint = _batches[batchId] & _HINT_MASK;
            if (hint == 0) batchId = bytes32(0);
        }
        if (hint != 0) {
            uint256 head = block.number >> _HINT_SHIFT;
            uint256 page = head - ((head % _HINT_PERIOD + _HINT_PERIOD - (hint - 1)) % _HINT_PERIOD);
            fromBlock = page << _HINT_SHIFT;
            toBlock = fromBlock + (1 << _HINT_SHIFT) - 1;
        }
    }

    /// @inheritdoc IRecordRegistry
    function getRecord(bytes32 recordId) external view returns (Record memory record) {
        Stored storage stored = _records[recordId];
        uint256 word;
        assembly ("memory-safe") {
            word := sload(stored.slot)
        }
        Status status = Status(uint8(word >> 224));
        if (status == Status.None) revert RecordNotFound(recordId);
        record = Record({patient: address(uint160(word)), scope: uint64(word >> 160), status: status});
    }

    /// @inheritdoc IRecordRegistry
    function batchCommitment(bytes32 batchId) external view returns (bytes32) {
        return bytes32(_batches[batchId] & ~_HINT_MASK);
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

    /// @dev The id of a proven batched record; reverts unless the leaf sits at `record.index` of an
    /// anchored batch whose commitment matches, with a scope inside the batch's scopes.
    function _verifyBatched(BatchedRecord calldata record) private view returns (bytes32 recordId) {
        bytes32 batchId = batchIdOf(record.author, record.batchKey);
        bytes32 commitment = keccak256(abi.encode(record.root, record.patient, record.scopes, record.leafCount));
        uint64 scope = record.scope;
        // An unknown batch's slot is zero: only a commitment whose leading 29 bytes are zero (a 2^-232
        // chance) would match it.
        if (
            (_batches[batchId] ^ uint256(commitment)) >> _HINT_BITS != 0 || record.index >= record.leafCount
                || scope == 0 || (scope & record.scopes) != scope
                || _rootOf(record) != record.root
        ) revert RecordInvalidProof(batchId, record.index);
        recordId = _batchedRecordIdIn(batchId, record.author, record.batchKey, record.index);
    }

    /// @dev {batchedRecordIdOf} for a batch whose id the caller already has.
    function _batchedRecordIdIn(bytes32 batchId, address author, bytes32 batchKey, uint32 index)
        private
        pure
        returns (bytes32)
    {
        return batchId | bytes32(uint256(index) << 128)
            | (keccak256(abi.encode(_BATCHED, author, batchKey, index)) & _LEAF_CHECK_MASK);
    }

    /// @dev The root a positional Merkle path leads to. The path must have exactly the tree's
    /// depth, so an inner node can never pass for a leaf (leaves are also double-hashed).
    function _rootOf(BatchedRecord calldata record) private pure returns (bytes32 node) {
        uint256 depth;
        // leafCount <= 2^10 (checked at anchoring), so the shift stays far below 2^256.
        while ((uint256(1) << depth) < record.leafCount) ++depth;
        if (record.proof.length != depth) return bytes32(0);
        node = keccak256(
            bytes.concat(keccak256(abi.encode(record.index, record.scope, record.contentHash, record.cidHash)))
        );
        uint256 position = record.index;
        for (uint256 i = 0; i < depth; ++i) {
            bytes32 sibling = record.proof[i];
            node = position & 1 == 0 ? keccak256(abi.encode(node, sibling)) : keccak256(abi.encode(sibling, node));
            position >>= 1;
        }
    }

    /// @dev The stored slot of a proven batched record, created Active on first use.
    function _materialize(BatchedRecord calldata record) private returns (bytes32 recordId, Stored storage stored) {
        recordId = _verifyBatched(record);
        stored = _records[recordId];
        if (stored.status == Status.None) {
            stored.patient = record.patient;
            stored.scope = record.scope;
            stored.status = Status.Active;
        }
    }

    function _amend(bytes32 previousId, Stored storage previous, bytes32 salt, bytes32 contentHash, bytes calldata cid)
        private
        returns (bytes32 recordId)
    {
        if (previous.status != Status.Active) revert RecordNotActive(previousId, previous.status);
        Stored memory kept = previous;
        _checkAuthor(kept.patient, kept.scope);
        previous.status = Status.Superseded;
        recordId = recordIdOf(msg.sender, salt);
        _store(recordId, kept.patient, contentHash, kept.scope, cid, previousId);
        emit RecordAmended(previousId, recordId, msg.sender);
    }

    function _tombstone(bytes32 recordId, Stored storage record) private {
        if (record.patient != msg.sender) revert RecordNotPatient(msg.sender, recordId);
        if (record.status == Status.Tombstoned) revert RecordNotActive(recordId, Status.Tombstoned);
        record.status = Status.Tombstoned;
        emit RecordTombstoned(recordId, msg.sender);
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
        if (_records[recordId].status != Status.None) revert RecordIdUnavailable(recordId);
        Stored storage stored = _records[recordId];
        // One SSTORE of the whole slot, in `Stored`'s packing: patient 0-159, scope 160-223,
        // status 224-231, anchoredNear 232-255.
        uint256 word = uint256(uint160(patient)) | (uint256(scope) << 160) | (uint256(uint8(Status.Active)) << 224)
            | ((((block.number >> _HINT_SHIFT) % _HINT_PERIOD) + 1) << 232);
        assembly ("memory-safe") {
            sstore(stored.slot, word)
        }
        emit RecordAdded(recordId, patient, msg.sender, contentHash, scope, previousId, cid);
    }
}
