"""Who a client or a custodian acts as: a wallet and its encryption keys, by version."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import umbral_pre
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ehr_client.crypto import generate_x25519_keypair
from ehr_client.errors import KeyNotFound
from ehr_client.keys.derive import DerivedKeys
from ehr_client.keys.keystore import Keystore


def umbral_public_key(secret: bytes) -> bytes:
    """The compressed (33-byte) public key of an Umbral secret key."""
    return bytes(umbral_pre.SecretKey.from_be_bytes(secret).public_key().to_compressed_bytes())


@dataclass(frozen=True)
class Identity:
    """Who the client acts as: a wallet (signs transactions and consent) and X25519 keys by version."""

    account: LocalAccount
    x25519: Mapping[int, bytes] = field(repr=False)
    umbral: Mapping[int, bytes] = field(default_factory=dict, repr=False)

    @property
    def address(self) -> str:
        return str(self.account.address)

    @property
    def current_umbral_key(self) -> tuple[int, bytes]:
        """(local version, secret) of the newest Umbral key (proxy re-encryption)."""
        if not self.umbral:
            raise KeyNotFound("this identity has no Umbral key; create one (`ehr custodian umbral-key`) first")
        version = max(self.umbral)
        return version, self.umbral[version]

    def umbral_secret_for(self, public_key: bytes) -> bytes | None:
        """The Umbral secret whose public key is `public_key`, if this identity holds it."""
        for secret in self.umbral.values():
            if umbral_public_key(secret) == bytes(public_key):
                return secret
        return None

    @property
    def current_key(self) -> tuple[int, bytes]:
        if not self.x25519:
            raise KeyNotFound("this identity has no X25519 key; run `ehr keys new` first")
        version = max(self.x25519)
        return version, self.x25519[version]

    @classmethod
    def generate(cls) -> Identity:
        """A fresh wallet, X25519 key and Umbral key, held in memory only (tests, demos)."""
        return cls(Account.create(), {1: generate_x25519_keypair().private_key},
                   {1: bytes(umbral_pre.SecretKey.random().to_be_bytes())})

    @classmethod
    def from_private_keys(
        cls, wallet_key: bytes | str, x25519_keys: Mapping[int, bytes], umbral_keys: Mapping[int, bytes] | None = None
    ) -> Identity:
        return cls(Account.from_key(wallet_key), dict(x25519_keys), dict(umbral_keys or {}))

    @classmethod
    def from_derived(cls, account: LocalAccount, keys: DerivedKeys, *, version: int = 1) -> Identity:
        """The wallet with the keys derived from its signature (:mod:`ehr_client.keys.derive`) as
        version `version` of each: what a browser holding only this wallet can also do."""
        return cls(account, {version: keys.x25519_secret}, {version: keys.umbral_secret})

    @classmethod
    def from_keystore(cls, keystore: Keystore, wallet: str, password: str) -> Identity:
        """Unlock the wallet and every X25519 and Umbral key version (old versions open old records)."""
        account = keystore.load_wallet(wallet, password)
        infos = keystore.list()
        keys = {
            info.version: keystore.load_encryption_key("x25519", password, version=info.version).secret
            for info in infos
            if info.kind == "x25519"
        }
        umbral = {
            info.version: keystore.load_encryption_key("umbral", password, version=info.version).secret
            for info in infos
            if info.kind == "umbral"
        }
        return cls(account, keys, umbral)
