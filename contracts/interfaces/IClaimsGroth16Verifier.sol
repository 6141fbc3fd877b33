// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IClaimsGroth16Verifier
/// @notice The verifier snarkjs generates (`snarkjs zkey export solidityverifier`) from the claims
/// circuit's final zkey. It is a build output of each deployment's trusted setup, never in the repo.
interface IClaimsGroth16Verifier {
    function verifyProof(
        uint256[2] calldata pA,
        uint256[2][2] calldata pB,
        uint256[2] calldata pC,
        uint256[19] calldata pubSignals
    ) external view returns (bool);
}
