import ape

X25519, SECP256K1, UMBRAL = 1, 2, 3


def test_publish_rotate_and_history(key_registry, patient):
    tx = key_registry.publishKey(X25519, b"\x01" * 32, sender=patient)
    assert tx.return_value == 1
    published = tx.events.filter(key_registry.KeyPublished)[0]
    assert published.account == patient.address and published.version == 1
    assert not tx.events.filter(key_registry.KeyRotated)

    tx = key_registry.publishKey(X25519, b"\x02" * 32, sender=patient)
    rotated = tx.events.filter(key_registry.KeyRotated)[0]
    assert (rotated.previousVersion, rotated.version) == (1, 2)
    assert key_registry.currentKey(patient, X25519) == (2, b"\x02" * 32)
    assert key_registry.keyAt(patient, X25519, 1).publicKey == b"\x01" * 32
    assert key_registry.latestVersion(patient, X25519) == 2
    assert key_registry.latestVersion(patient, UMBRAL) == 0


def test_key_types_are_independent(key_registry, patient):
    key_registry.publishKey(X25519, b"\x01" * 32, sender=patient)
    key_registry.publishKey(UMBRAL, b"\x02" + b"\x03" * 32, sender=patient)
    assert key_registry.currentKey(patient, UMBRAL)[0] == 1
    assert key_registry.currentKey(patient, X25519)[0] == 1


def test_publish_rejects_bad_type_and_length(key_registry, patient):
    with ape.reverts(key_registry.KeyRegistryInvalidKeyType, keyType=0):
        key_registry.publishKey(0, b"\x01" * 32, sender=patient)
    with ape.reverts(key_registry.KeyRegistryInvalidKeyLength, keyType=X25519, length=31):
        key_registry.publishKey(X25519, b"\x01" * 31, sender=patient)
    with ape.reverts(key_registry.KeyRegistryInvalidKeyLength, keyType=SECP256K1, length=32):
        key_registry.publishKey(SECP256K1, b"\x01" * 32, sender=patient)


def test_revoked_current_key_leaves_no_active_key(key_registry, patient):
    key_registry.publishKey(X25519, b"\x01" * 32, sender=patient)
    tx = key_registry.revokeKey(X25519, 1, sender=patient)
    assert tx.events.filter(key_registry.KeyRevoked)[0].version == 1
    with ape.reverts(key_registry.KeyRegistryNoActiveKey, account=patient.address, keyType=X25519):
        key_registry.currentKey(patient, X25519)
    assert key_registry.keyAt(patient, X25519, 1).revokedAt > 0
    with ape.reverts(key_registry.KeyRegistryAlreadyRevoked, account=patient.address, keyType=X25519, version=1):
        key_registry.revokeKey(X25519, 1, sender=patient)
    key_registry.publishKey(X25519, b"\x05" * 32, sender=patient)
    assert key_registry.currentKey(patient, X25519)[0] == 2


def test_revoke_unknown_version_reverts(key_registry, patient, stranger):
    key_registry.publishKey(X25519, b"\x01" * 32, sender=patient)
    with ape.reverts(key_registry.KeyRegistryUnknownVersion, account=stranger.address, keyType=X25519, version=1):
        key_registry.revokeKey(X25519, 1, sender=stranger)
    with ape.reverts(key_registry.KeyRegistryUnknownVersion, account=patient.address, keyType=X25519, version=7):
        key_registry.keyAt(patient, X25519, 7)
