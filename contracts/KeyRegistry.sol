// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IKeyRegistry} from "./interfaces/IKeyRegistry.sol";

/// @title KeyRegistry
/// @notice Versioned encryption public keys per account and key type. See {IKeyRegistry}.
contract KeyRegistry is IKeyRegistry {
    mapping(address account => mapping(KeyType keyType => uint32)) private _latest;
    mapping(address account => mapping(KeyType keyType => mapping(uint32 version => PublishedKey))) private _keys;

    /// @inheritdoc IKeyRegistry
    function publishKey(KeyType keyType, bytes calldata publicKey) external returns (uint32 version) {
        if (keyType == KeyType.None) revert KeyRegistryInvalidKeyType(uint8(keyType));
        uint256 expected = keyType == KeyType.X25519 ? 32 : 33;
        if (publicKey.length != expected) revert KeyRegistryInvalidKeyLength(keyType, publicKey.length);

        uint32 previous = _latest[msg.sender][keyType];
        version = previous + 1;
        _latest[msg.sender][keyType] = version;
        _keys[msg.sender][keyType][version] =
            PublishedKey({publicKey: publicKey, publishedAt: uint64(block.timestamp), revokedAt: 0});
        emit KeyPublished(msg.sender, keyType, version, publicKey);
        if (previous != 0) emit KeyRotated(msg.sender, keyType, previous, version);
    }

    /// @inheritdoc IKeyRegistry
    function revokeKey(KeyType keyType, uint32 version) external {
        PublishedKey storage key = _keys[msg.sender][keyType][version];
        if (key.publishedAt == 0) revert KeyRegistryUnknownVersion(msg.sender, keyType, version);
        if (key.revokedAt != 0) revert KeyRegistryAlreadyRevoked(msg.sender, keyType, version);
        key.revokedAt = uint64(block.timestamp);
        emit KeyRevoked(msg.sender, keyType, version);
    }

    /// @inheritdoc IKeyRegistry
    function currentKey(address account, KeyType keyType)
        external
        view
        returns (uint32 version, bytes memory publicKey)
    {
        version = _latest[account][keyType];
        PublishedKey storage key = _keys[account][keyType][version];
        if (version == 0 || key.revokedAt != 0) revert KeyRegistryNoActiveKey(account, keyType);
        return (version, key.publicKey);
    }

    /// @inheritdoc IKeyRegistry
    function keyAt(address account, KeyType keyType, uint32 version) external view returns (PublishedKey memory key) {
        key = _keys[account][keyType][version];
        if (key.publishedAt == 0) revert KeyRegistryUnknownVersion(account, keyType, version);
    }

    /// @inheritdoc IKeyRegistry
    function latestVersion(address account, KeyType keyType) external view returns (uint32) {
        return _latest[account][keyType];
    }
}
