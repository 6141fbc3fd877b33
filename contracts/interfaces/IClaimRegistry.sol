// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IRecordRegistry} from "./IRecordRegistry.sol";

/// @title IClaimRegistry
/// @notice Zero-knowledge claims about records. When a member writes a record, the client extracts
/// one typed claim from it (kind, code, unit, value, date) and the record's author commits to it
/// here with a hiding Poseidon commitment; the claim and the salt stay inside the encrypted record.
/// Later, anyone who can read the record (normally the patient) proves a predicate over the claim
/// (value in a range, code in a set, date within bounds; age over a threshold is a bound on the
/// birth date) to one verifier, without revealing the claim. The proof is a Groth16 proof over a
/// circuit whose public inputs are the commitment, the record id, a binding to the verifier and
/// the predicate, so it cannot be moved to another record, verifier, challenge or predicate.
///
/// What the chain vouches for: the commitment was set by the record's author (the id is derived
/// from the author's address and salt, as in {IRecordRegistry-recordIdOf}), who at that moment was
/// an active provider or lab member with the patient's amend grant for the record's scope; it can
/// be set once and never changed; a proof is accepted only while the record is active (neither
/// superseded nor tombstoned). A batched record's commitment is set by the batch's author with the
/// record's Merkle proof ({commitBatchedClaims}); it counts while the record is active, whether or
/// not an amendment or erasure has since stored the record's state in the registry.
interface IClaimRegistry {
    /// @notice The public bounds a proof is checked against; all of them hold at once.
    /// @param kind The claim's kind (1 Observation, 2 Immunization, 3 Patient, 4 Condition).
    /// @param unit Field element of the quantity's unit, or 0 for any unit.
    /// @param valueLo Lowest encoded value (quantity x 1000 + 2^47).
    /// @param valueHi Highest encoded value.
    /// @param dateLo Earliest date, as the integer YYYYMMDD.
    /// @param dateHi Latest date, as the integer YYYYMMDD.
    /// @param codeCheck Whether the claim's code must equal one of `codes`.
    /// @param codes Field elements of the accepted codes (repeat one to fill the set).
    struct Predicate {
        uint8 kind;
        uint256 unit;
        uint64 valueLo;
        uint64 valueHi;
        uint32 dateLo;
        uint32 dateHi;
        bool codeCheck;
        uint256[8] codes;
    }

    /// @notice A Groth16 proof (points on BN254) as snarkjs exports it for Solidity.
    struct Proof {
        uint256[2] a;
        uint256[2][2] b;
        uint256[2] c;
    }

    /// @notice No record has this id (for a commitment: none anchored by the caller with this salt).
    error ClaimRecordNotFound(bytes32 recordId);
    /// @notice The record was superseded by an amendment or tombstoned.
    error ClaimRecordNotActive(bytes32 recordId);
    /// @notice The commitment is zero or not a field element.
    error ClaimInvalidCommitment(bytes32 recordId);
    /// @notice The record's claims were committed already; a commitment never changes.
    error ClaimAlreadyCommitted(bytes32 recordId);
    /// @notice The author is not an active provider or lab, lacks the patient's amend grant, or is the
    /// record's patient (a claim about oneself is self-declared, whatever one's role).
    error ClaimUnauthorizedAuthor(address author, bytes32 recordId);
    /// @notice No claims were committed for the record.
    error ClaimNotCommitted(bytes32 recordId);
    /// @notice The proof does not hold for this record, verifier, challenge and predicate.
    error ClaimInvalidProof(bytes32 recordId);

    /// The proof's claim kind cannot come from a record of this category (a Patient claim from a
    /// LAB record, say): the author's grant for the record's category does not attest it.
    error ClaimKindOutOfScope(bytes32 recordId, uint8 kind, uint64 scope);

    /// @notice The author of `recordId` committed to its claims.
    event ClaimsCommitted(bytes32 indexed recordId, address indexed patient, address indexed author);
    /// @notice `verifier` checked a proof that the claims of `recordId` satisfy the predicate
    /// whose id is `predicate` (keccak256 of the ABI-encoded {Predicate}).
    event ClaimProven(
        bytes32 indexed recordId, address indexed verifier, address indexed patient, bytes32 predicate
    );

    /// @notice Commit to the claims of a record the caller anchored with `salt`.
    /// Requirements: the record {IRecordRegistry-recordIdOf}(caller, salt) is active; the caller is
    /// an active provider or lab member, not the record's patient, with the patient's amend grant
    /// for the record's scope; no
    /// commitment was set for it; `commitment` is a non-zero field element.
    /// Emits a {ClaimsCommitted} event.
    /// @param salt The salt the record was anchored with.
    /// @param commitment Poseidon(recordHi, recordLo, kind, code, unit, value, date, claimSalt).
    /// @return recordId The record the commitment is for.
    function commitClaims(bytes32 salt, uint256 commitment) external returns (bytes32 recordId);

    /// @notice Commit to the claims of a record the caller anchored in a batch.
    /// Requirements: `record` proves its leaf in a batch the caller anchored
    /// ({IRecordRegistry-resolveBatchedRecord}) and the record is active; otherwise as {commitClaims}.
    /// Emits a {ClaimsCommitted} event.
    /// @param record The batched record and its Merkle proof.
    /// @param commitment Poseidon(recordHi, recordLo, kind, code, unit, value, date, claimSalt).
    /// @return recordId The record the commitment is for.
    function commitBatchedClaims(IRecordRegistry.BatchedRecord calldata record, uint256 commitment)
        external
        returns (bytes32 recordId);

    /// @notice Check a proof without a transaction; reverts with the reason it does not hold.
    /// Requirements: the record is active and has a commitment; the proof holds for the record,
    /// `verifier`, `challenge` and `predicate`.
    /// @param recordId The record the claim is about.
    /// @param verifier Whom the proof was made for.
    /// @param challenge What the verifier chose (zero when it relies on its address alone).
    /// @param predicate The bounds.
    /// @param proof The proof.
    /// @return patient The record's patient.
    /// @return predicateId keccak256 of the ABI-encoded predicate.
    function checkClaim(
        bytes32 recordId,
        address verifier,
        bytes32 challenge,
        Predicate calldata predicate,
        Proof calldata proof
    ) external view returns (address patient, bytes32 predicateId);

    /// @notice Same as {checkClaim} with the caller as verifier, recorded in the patient's audit trail.
    /// Emits a {ClaimProven} event.
    function proveClaim(bytes32 recordId, bytes32 challenge, Predicate calldata predicate, Proof calldata proof)
        external
        returns (bytes32 predicateId);

    /// @notice The commitment set for `recordId`, zero when none.
    function commitmentOf(bytes32 recordId) external view returns (uint256);

    /// @notice The public input that binds a proof to `verifier` and `challenge` on this chain and
    /// this contract: keccak256(chainid, this, verifier, challenge) shifted
    /// right by 8 bits so it is a field element.
    function bindingOf(address verifier, bytes32 challenge) external view returns (uint256);

    /// @notice The record registry whose records the claims are about.
    function recordRegistry() external view returns (address);

    /// @notice The Groth16 verifier generated from this deployment's trusted setup.
    function verifier() external view returns (address);
}
