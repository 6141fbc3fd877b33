// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IRecordRegistry
/// @notice Anchors a patient's encrypted records. What on-chain logic needs (patient, scope, status)
/// lives in one storage slot per record version; what only readers need (sha256 of the
/// ciphertext, storage pointer, author, previous version) is in the {RecordAdded} event, which is
/// as tamper-evident as state and far cheaper. No health data and no identifier is ever stored: a
/// patient is an address (a pseudonym). Amendments form a chain and never overwrite. Batches of
/// records can be anchored under one Merkle root.
interface IRecordRegistry {
    /// @notice Lifecycle of a record version.
    enum Status {
        None,
        Active,
        Superseded,
        Tombstoned
    }

    /// @notice A record version as stored (one slot).
    struct Record {
        address patient;
        uint64 scope;
        Status status;
    }

    /// @notice A batch of records anchored under one Merkle root.
    struct Batch {
        address author;
        uint32 leafCount;
        uint64 anchoredAt;
    }

    /// @notice The patient address has not registered.
    error RecordPatientNotRegistered(address patient);
    /// @notice The caller may not write records of this patient in this scope.
    error RecordUnauthorizedAuthor(address author, address patient, uint64 scope);
    /// @notice A record id is zero or already used.
    error RecordIdUnavailable(bytes32 recordId);
    /// @notice No record with this id.
    error RecordNotFound(bytes32 recordId);
    /// @notice The record is not the active latest version (already amended, or tombstoned).
    error RecordNotActive(bytes32 recordId, Status status);
    /// @notice The record's content hash, scope or pointer is empty.
    error RecordInvalidContent(bytes32 recordId);
    /// @notice Only the patient may tombstone a record.
    error RecordNotPatient(address caller, bytes32 recordId);
    /// @notice The proof does not place this leaf in an anchored batch.
    error RecordInvalidProof(bytes32 root, bytes32 recordId);
    /// @notice The batch root is zero or already anchored, or its leaf count is zero.
    error RecordInvalidBatch(bytes32 root);
    /// @notice The caller is not an active provider or lab and may not anchor batches.
    error RecordUnauthorizedBatchAuthor(address author);

    /// @notice An address registered as a patient.
    event PatientRegistered(address indexed patient);
    /// @notice A record version was anchored. `previousId` is zero for a first version.
    event RecordAdded(
        bytes32 indexed recordId,
        address indexed patient,
        address indexed author,
        bytes32 contentHash,
        uint64 scope,
        bytes32 previousId,
        bytes cid
    );
    /// @notice A record version was replaced by an amendment; the old version stays readable.
    event RecordAmended(bytes32 indexed previousId, bytes32 indexed recordId, address indexed author);
    /// @notice A record version was erased (crypto-shredded off chain); it stays tombstoned forever.
    event RecordTombstoned(bytes32 indexed recordId, address indexed patient);
    /// @notice A batch of records was anchored under a Merkle root; the manifest lists its leaves.
    event BatchAnchored(
        bytes32 indexed root,
        address indexed author,
        uint32 leafCount,
        bytes32 manifestHash,
        bytes manifestCid
    );

    /// @notice Register the caller as a patient. The address is the only identity on chain.
    /// @dev Registering twice is a no-op that emits nothing.
    /// Emits a {PatientRegistered} event.
    function registerPatient() external;

    /// @notice Anchor the first version of a record.
    /// @dev The record id is chosen by the client before encrypting (it is bound into the
    /// ciphertext), so a failed anchor can be retried with the same stored blob.
    /// Requirements:
    /// - `patient` is registered;
    /// - the caller is the patient, or an active provider or lab holding an amend grant from the
    ///   patient that covers `scope`;
    /// - `recordId` is non-zero and unused; `contentHash`, `scope` and `cid` are non-empty.
    /// Emits a {RecordAdded} event.
    /// @param recordId The new record's id.
    /// @param patient The patient the record belongs to.
    /// @param contentHash sha256 of the stored ciphertext.
    /// @param scope The category bitmask of the record.
    /// @param cid The storage pointer (binary CID) of the ciphertext.
    function addRecord(bytes32 recordId, address patient, bytes32 contentHash, uint64 scope, bytes calldata cid)
        external;

    /// @notice Anchor a new version of a record; the previous version becomes Superseded.
    /// @dev The new version keeps the patient and the scope of the previous one.
    /// Requirements: `previousId` is Active; the caller may write that patient's records in that
    /// scope; `recordId` is non-zero and unused; `contentHash` and `cid` are non-empty.
    /// Emits a {RecordAdded} and a {RecordAmended} event.
    /// @param previousId The version being amended.
    /// @param recordId The new version's id.
    /// @param contentHash sha256 of the new ciphertext.
    /// @param cid The storage pointer of the new ciphertext.
    function amendRecord(bytes32 previousId, bytes32 recordId, bytes32 contentHash, bytes calldata cid) external;

    /// @notice Mark a record version erased. Irreversible.
    /// @dev Part of crypto-shredding: the keys are destroyed and blobs unpinned off chain.
    /// Requirements: caller is the record's patient; the record exists and is not tombstoned.
    /// Emits a {RecordTombstoned} event.
    /// @param recordId The version to tombstone.
    function tombstone(bytes32 recordId) external;

    /// @notice Anchor many records in one transaction under a Merkle root of their leaves.
    /// @dev Leaves are `keccak256(bytes.concat(keccak256(abi.encode(recordId, patient,
    /// contentHash, scope))))`, the OpenZeppelin double-hash convention.
    /// Requirements: caller is an active provider or lab; `root` is non-zero and new;
    /// `leafCount` is non-zero.
    /// Emits a {BatchAnchored} event.
    /// @param root The Merkle root over the batch's leaves.
    /// @param leafCount The number of leaves.
    /// @param manifestHash sha256 of the stored batch manifest.
    /// @param manifestCid The storage pointer of the batch manifest.
    function anchorBatch(bytes32 root, uint32 leafCount, bytes32 manifestHash, bytes calldata manifestCid) external;

    /// @notice Erase a record that was anchored in a batch. Irreversible.
    /// @dev Gives the batched record a stored state (Tombstoned) so later reads are refused.
    /// Requirements: caller is the leaf's patient; the proof places the leaf in an anchored batch;
    /// the record id has no stored state yet.
    /// Emits a {RecordTombstoned} event.
    /// @param root The batch root.
    /// @param proof The Merkle proof of the leaf.
    /// @param recordId The record's id.
    /// @param contentHash sha256 of the record's ciphertext.
    /// @param scope The record's scope.
    function tombstoneBatched(bytes32 root, bytes32[] calldata proof, bytes32 recordId, bytes32 contentHash, uint64 scope)
        external;

    /// @notice Whether a record leaf is part of an anchored batch.
    /// @param root The batch root.
    /// @param proof The Merkle proof of the leaf.
    /// @param recordId The record's id.
    /// @param patient The record's patient.
    /// @param contentHash sha256 of the record's ciphertext.
    /// @param scope The record's scope.
    /// @return True when the batch is anchored and the proof is valid.
    function verifyBatchedRecord(
        bytes32 root,
        bytes32[] calldata proof,
        bytes32 recordId,
        address patient,
        bytes32 contentHash,
        uint64 scope
    ) external view returns (bool);

    /// @notice The leaf hash of a batched record, as `verifyBatchedRecord` computes it.
    function batchLeaf(bytes32 recordId, address patient, bytes32 contentHash, uint64 scope)
        external
        pure
        returns (bytes32);

    /// @notice The stored status of a record id (None for unknown and for batched records that
    /// were never tombstoned). Never reverts.
    /// @param recordId The record id.
    /// @return The status.
    function recordStatus(bytes32 recordId) external view returns (Status);

    /// @notice A record version. Reverts with {RecordNotFound} for unknown ids.
    /// @param recordId The version to read.
    /// @return The stored record.
    function getRecord(bytes32 recordId) external view returns (Record memory);

    /// @notice A batch. `anchoredAt` is zero for unknown roots.
    /// @param root The batch root.
    /// @return The stored batch.
    function getBatch(bytes32 root) external view returns (Batch memory);

    /// @notice Whether `patient` registered.
    /// @param patient The address to check.
    /// @return True when registered.
    function isPatient(address patient) external view returns (bool);

    /// @notice The consent manager this registry created and asks about write permission.
    function consentManager() external view returns (address);

    /// @notice The consortium this registry asks about membership.
    function consortium() external view returns (address);
}
