// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IKeyRegistry
/// @notice Where accounts publish the public keys others encrypt to. Keys are versioned per
/// account and key type: rotating publishes a new version, old versions stay readable so old
/// records can still be attributed and opened, and a revoked version is marked, never deleted.
interface IKeyRegistry {
    /// @notice The algorithm of a published key.
    enum KeyType {
        None,
        X25519,
        Secp256k1,
        Umbral
    }

    /// @notice A published key version.
    struct PublishedKey {
        bytes publicKey;
        uint64 publishedAt;
        uint64 revokedAt;
    }

    /// @notice `None` is not a key type.
    error KeyRegistryInvalidKeyType(uint8 keyType);
    /// @notice The key bytes have the wrong length for their type.
    error KeyRegistryInvalidKeyLength(KeyType keyType, uint256 length);
    /// @notice No such version for this account and key type.
    error KeyRegistryUnknownVersion(address account, KeyType keyType, uint32 version);
    /// @notice The version is already revoked.
    error KeyRegistryAlreadyRevoked(address account, KeyType keyType, uint32 version);
    /// @notice The account has no key of this type that is not revoked.
    error KeyRegistryNoActiveKey(address account, KeyType keyType);

    /// @notice A key version was published (the first, or a rotation).
    event KeyPublished(address indexed account, KeyType indexed keyType, uint32 version, bytes publicKey);
    /// @notice A newer version replaced an older one as the current key.
    event KeyRotated(address indexed account, KeyType indexed keyType, uint32 previousVersion, uint32 version);
    /// @notice A key version must no longer be used to encrypt to its owner.
    event KeyRevoked(address indexed account, KeyType indexed keyType, uint32 version);

    /// @notice Publish a new key version for the caller; it becomes the current key of its type.
    /// @dev The first publish is version 1; later ones rotate.
    /// Requirements: `keyType` is not None; `publicKey` has the length of its type
    /// (X25519: 32, Secp256k1: 33 compressed, Umbral: 33 compressed).
    /// Emits a {KeyPublished} event, and a {KeyRotated} event when a previous version exists.
    /// @param keyType The algorithm.
    /// @param publicKey The public key bytes.
    /// @return version The new version.
    function publishKey(KeyType keyType, bytes calldata publicKey) external returns (uint32 version);

    /// @notice Revoke one of the caller's key versions.
    /// @dev Revoking the current version leaves the account with no active key of that type until
    /// it publishes a new one.
    /// Requirements: the version exists and is not revoked.
    /// Emits a {KeyRevoked} event.
    /// @param keyType The algorithm.
    /// @param version The version to revoke.
    function revokeKey(KeyType keyType, uint32 version) external;

    /// @notice The current, non-revoked key of `account` for `keyType`.
    /// @dev Reverts with {KeyRegistryNoActiveKey} when there is none.
    /// @param account The owner.
    /// @param keyType The algorithm.
    /// @return version The current version.
    /// @return publicKey The key bytes.
    function currentKey(address account, KeyType keyType) external view returns (uint32 version, bytes memory publicKey);

    /// @notice A key version, revoked or not, for history.
    /// @param account The owner.
    /// @param keyType The algorithm.
    /// @param version The version.
    /// @return key The stored key version.
    function keyAt(address account, KeyType keyType, uint32 version) external view returns (PublishedKey memory key);

    /// @notice The latest version number published (0 when none).
    /// @param account The owner.
    /// @param keyType The algorithm.
    /// @return The latest version.
    function latestVersion(address account, KeyType keyType) external view returns (uint32);
}
