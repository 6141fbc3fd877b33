// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IRecordRegistry
/// @notice Anchors a patient's encrypted records. One record model, two ways to anchor it:
/// - one record per transaction ({addRecord}, {amendRecord});
/// - many records of one patient under one Merkle root ({anchorBatch}), at a fraction of the gas.
///
/// Identity is bound to the author: a record id is derived on chain from the author's address and
/// a salt the author chose ({recordIdOf}), or from the author, the batch key and the leaf's position
/// ({batchedRecordIdOf}). Nobody can claim, squat or front-run an id or a batch another member
/// will use, a batched leaf occupies exactly one position of its tree, and single and batched ids
/// live in one id space that never repeats. A batched record id names its batch: it starts with the
/// 12-byte batch id, so {anchoredNear} answers for it from the batch's slot. The chain checks the author's right to write the
/// patient's scopes when anything is anchored, for a batch once for the union of its scopes.
///
/// What on-chain logic needs (patient, scope, status) lives in one slot per single record. A
/// batched record has no slot until it is amended or tombstoned; until then its state is its
/// leaf (patient and scopes from the batch, the rest from the leaf), proven with a
/// {BatchedRecord}. What only readers need (sha256 of the ciphertext, storage pointer, author,
/// previous version) is in events. No health data and no identifier is ever stored: a patient is
/// an address (a pseudonym).
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

    /// @notice A record anchored in a batch, with what proves it: the batch's key and commitment
    /// (root, patient, scopes, leafCount), the leaf (index, scope, contentHash, cidHash) and the
    /// Merkle path from the leaf at `index` to the root.
    struct BatchedRecord {
        address author;
        bytes32 batchKey;
        bytes32 root;
        address patient;
        uint64 scopes;
        uint32 leafCount;
        uint32 index;
        uint64 scope;
        bytes32 contentHash;
        bytes32 cidHash;
        bytes32[] proof;
    }

    /// @notice The patient address has not registered.
    error RecordPatientNotRegistered(address patient);
    /// @notice The caller may not write records of this patient in this scope.
    error RecordUnauthorizedAuthor(address author, address patient, uint64 scope);
    /// @notice The record id derived from the caller and the salt is already used.
    error RecordIdUnavailable(bytes32 recordId);
    /// @notice No record with this id.
    error RecordNotFound(bytes32 recordId);
    /// @notice The record is not the active latest version (already amended, or tombstoned).
    error RecordNotActive(bytes32 recordId, Status status);
    /// @notice The record's content hash, scope or pointer is empty.
    error RecordInvalidContent(bytes32 recordId);
    /// @notice Only the patient may tombstone a record.
    error RecordNotPatient(address caller, bytes32 recordId);
    /// @notice The batched record is not a leaf of an anchored batch at the position it claims.
    error RecordInvalidProof(bytes32 batchId, uint32 index);
    /// @notice The batch's root, leaf count, scopes or manifest is empty, the leaf count is over
    /// 1,024, or the batch id is already anchored.
    error RecordInvalidBatch(bytes32 batchId);

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
    /// @notice Records of one patient were anchored under a Merkle root; the manifest lists the
    /// leaves. Leaf `i` is the record {batchedRecordIdOf}(author, batchKey, i), whose first 12 bytes
    /// are `batchId`.
    event BatchAnchored(
        bytes32 indexed batchId,
        address indexed author,
        address indexed patient,
        bytes32 batchKey,
        bytes32 root,
        uint64 scopes,
        uint32 leafCount,
        bytes32 manifestHash,
        bytes manifestCid
    );

    /// @notice Register the caller as a patient. The address is the only identity on chain.
    /// @dev Registering twice is a no-op that emits nothing.
    /// Emits a {PatientRegistered} event.
    function registerPatient() external;

    /// @notice Anchor the first version of a record, under the id {recordIdOf}(caller, salt).
    /// @dev The client computes the id before encrypting (it is bound into the ciphertext), so a
    /// failed anchor is retried with the same stored blob and can only land as the same record.
    /// Requirements:
    /// - `patient` is registered;
    /// - the caller is the patient, or an active provider or lab holding an amend grant from the
    ///   patient that covers `scope`;
    /// - the id is unused; `contentHash`, `scope` and `cid` are non-empty.
    /// Emits a {RecordAdded} event.
    /// @param salt The author's salt for this record.
    /// @param patient The patient the record belongs to.
    /// @param contentHash sha256 of the stored ciphertext.
    /// @param scope The category bitmask of the record.
    /// @param cid The storage pointer (binary CID) of the ciphertext.
    /// @return recordId The new record's id.
    function addRecord(bytes32 salt, address patient, bytes32 contentHash, uint64 scope, bytes calldata cid)
        external
        returns (bytes32 recordId);

    /// @notice Anchor a new version of a single record; the previous version becomes Superseded.
    /// @dev The new version keeps the patient and the scope of the previous one; its id is
    /// {recordIdOf}(caller, salt).
    /// Requirements: `previousId` is Active; the caller may write that patient's records in that
    /// scope; the new id is unused; `contentHash` and `cid` are non-empty.
    /// Emits a {RecordAdded} and a {RecordAmended} event.
    /// @param previousId The version being amended.
    /// @param salt The author's salt for the new version.
    /// @param contentHash sha256 of the new ciphertext.
    /// @param cid The storage pointer of the new ciphertext.
    /// @return recordId The new version's id.
    function amendRecord(bytes32 previousId, bytes32 salt, bytes32 contentHash, bytes calldata cid)
        external
        returns (bytes32 recordId);

    /// @notice {amendRecord} for a record anchored in a batch.
    /// Requirements: as {amendRecord}; `previous` is proven in its batch.
    /// Emits a {RecordAdded} and a {RecordAmended} event.
    /// @param previous The batched record being amended, with its proof.
    /// @param salt The author's salt for the new version.
    /// @param contentHash sha256 of the new ciphertext.
    /// @param cid The storage pointer of the new ciphertext.
    /// @return recordId The new version's id.
    function amendBatchedRecord(BatchedRecord calldata previous, bytes32 salt, bytes32 contentHash, bytes calldata cid)
        external
        returns (bytes32 recordId);

    /// @notice Mark a record version erased. Irreversible.
    /// @dev Part of crypto-shredding: the keys are destroyed and blobs unpinned off chain.
    /// Requirements: caller is the record's patient; the record exists and is not tombstoned.
    /// Emits a {RecordTombstoned} event.
    /// @param recordId The version to tombstone.
    function tombstone(bytes32 recordId) external;

    /// @notice {tombstone} for a record anchored in a batch.
    /// Requirements: as {tombstone}; `record` is proven in its batch.
    /// Emits a {RecordTombstoned} event.
    /// @param record The batched record, with its proof.
    function tombstoneBatchedRecord(BatchedRecord calldata record) external;

    /// @notice Anchor records of one patient in one transaction under a Merkle root of their leaves.
    /// @dev Leaf `i` is `keccak256(bytes.concat(keccak256(abi.encode(i, scope, contentHash,
    /// keccak256(cid)))))` at position `i` of a tree of depth ceil(log2(leafCount)) padded with zero
    /// leaves; inner nodes are `keccak256(abi.encode(left, right))`. The batch is keyed by
    /// {batchIdOf}(caller, batchKey), so no one else can anchor under it (another author would need a
    /// key whose hash starts with the same 96 bits).
    /// Requirements: `patient` is registered; the caller is the patient or an active provider or
    /// lab holding an amend grant covering `scopes`; the batch id is not anchored yet;
    /// `root`, `scopes`, `leafCount` (at most 1,024), `manifestHash` and `manifestCid` are non-empty.
    /// Emits a {BatchAnchored} event.
    /// @param batchKey The author's key for this batch (fixed before encrypting its records).
    /// @param patient Whose records the batch holds.
    /// @param scopes The union of the leaves' scopes.
    /// @param root The Merkle root over the batch's leaves.
    /// @param leafCount The number of leaves.
    /// @param manifestHash sha256 of the stored batch manifest.
    /// @param manifestCid The storage pointer of the batch manifest.
    /// @return batchId The batch's id.
    function anchorBatch(
        bytes32 batchKey,
        address patient,
        uint64 scopes,
        bytes32 root,
        uint32 leafCount,
        bytes32 manifestHash,
        bytes calldata manifestCid
    ) external returns (bytes32 batchId);

    /// @notice The id and current state of a batched record, if the proof places it in its batch.
    /// @dev The state is the stored one once the record was amended or tombstoned, else Active
    /// with the batch's patient and the leaf's scope. Reverts with {RecordInvalidProof} otherwise.
    /// @param record The batched record, with its proof.
    /// @return recordId The record's id.
    /// @return state Its patient, scope and status.
    function resolveBatchedRecord(BatchedRecord calldata record)
        external
        view
        returns (bytes32 recordId, Record memory state);

    /// @notice The id of a single record: `keccak256(abi.encode(uint8(1), author, salt))`.
    function recordIdOf(address author, bytes32 salt) external pure returns (bytes32);

    /// @notice The id of leaf `index` of a batch: bytes 0-11 are the batch id ({batchIdOf}), bytes
    /// 12-15 `index` (big-endian), bytes 16-31 the last 16 bytes of
    /// `keccak256(abi.encode(uint8(2), author, batchKey, index))`.
    /// @dev Taking another author's batch id needs a batch key whose hash starts with the same 96
    /// bits (a second preimage, about 2^96 hashes), and {anchorBatch} refuses an id already
    /// anchored; a single record id ({recordIdOf}, a full 256-bit hash) equals a batched one only by
    /// matching all 32 bytes.
    function batchedRecordIdOf(address author, bytes32 batchKey, uint32 index) external pure returns (bytes32);

    /// @notice The id of a batch: the leading 12 bytes of `keccak256(abi.encode(uint8(3), author,
    /// batchKey))`, the other 20 bytes zero.
    function batchIdOf(address author, bytes32 batchKey) external pure returns (bytes32);

    /// @notice The stored status of a record id: None for unknown ids and for batched records that
    /// were never amended or tombstoned. Never reverts.
    /// @param recordId The record id.
    /// @return The status.
    function recordStatus(bytes32 recordId) external view returns (Status);

    /// @notice Where the event that describes a record is, so a reader finds it without scanning the
    /// chain: the record's stored status and the 256-block range `[fromBlock, toBlock]` that holds
    /// its `RecordAdded` event (a single record; `batchId` zero) or the `BatchAnchored` event of
    /// the batch its id names (a batched record, stored or not; `batchId` that batch). For an id
    /// that is neither everything is zero. A batched answer says only that the id's first 12 bytes
    /// name an anchored batch: the reader checks the rest of the id against the event. Exact for
    /// events less than 2^32 blocks old. Never reverts.
    /// @param recordId The record id.
    /// @return status The stored status (None for a batched record never amended nor tombstoned).
    /// @return fromBlock The first block of the range (0 for none).
    /// @return toBlock The last block of the range (0 for none).
    /// @return batchId The batch the id names, zero for a single record or an unknown id.
    function anchoredNear(bytes32 recordId)
        external
        view
        returns (Status status, uint256 fromBlock, uint256 toBlock, bytes32 batchId);

    /// @notice A stored record version. Reverts with {RecordNotFound} for ids without state.
    /// @param recordId The version to read.
    /// @return The stored record.
    function getRecord(bytes32 recordId) external view returns (Record memory);

    /// @notice A batch's commitment: `keccak256(abi.encode(root, patient, scopes, leafCount))` with
    /// its last 3 bytes zeroed (the batch's slot keeps where its event is there); zero for unknown
    /// batches.
    /// @param batchId The batch id.
    /// @return The commitment.
    function batchCommitment(bytes32 batchId) external view returns (bytes32);

    /// @notice Whether `patient` registered.
    /// @param patient The address to check.
    /// @return True when registered.
    function isPatient(address patient) external view returns (bool);

    /// @notice The consent manager this registry created and asks about write permission.
    function consentManager() external view returns (address);

    /// @notice The consortium this registry asks about membership.
    function consortium() external view returns (address);
}
