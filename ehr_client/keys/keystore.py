"""One person's keys in one directory, each encrypted at rest.

Layout (directory 0700, files 0600, every write atomic: temp file, fsync, link/rename)::

    <path>/wallet-<name>.json     Ethereum wallets (secp256k1), any number, by name
    <path>/x25519-v<N>.json       X25519 encryption keys, versions 1, 2, ...
    <path>/umbral-v<N>.json       Umbral (proxy re-encryption) keys, versions 1, 2, ...

Each file is an eth-account version 3 keyfile (scrypt + AES-128-CTR) with an ``"ehr"`` sidecar
holding the key type, version, creation time, public key and a local revoked marker; see
:mod:`ehr_client.keys._keyfile` for the integrity checks. A wallet file without the sidecar is a
plain eth-account keyfile (:meth:`export_wallet`), the format geth, MetaMask and Ape's
``<data folder>/accounts/<alias>.json`` use. There is no Ape adapter: to bring an Ape account in,
``import_wallet(name, Account.decrypt(<that JSON>, password), password)``.

Passwords are passed to each call that needs a secret and never stored; there is no unlocked
state. Calls that only read public data (:meth:`list`, :meth:`info`, :meth:`mark_revoked`) need
none. Rotation adds version N+1 and keeps every older version, so records encrypted to an old key
stay readable; :meth:`mark_revoked` notes locally that a version was revoked (the on-chain
revocation belongs to the chain layer).

``scrypt_n`` is the scrypt cost of keys written from now on (default 2**18, as eth-account and
geth); reading uses whatever cost a file records. Lower it only in tests.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_keys import keys as eth_keys

from ehr_client.errors import CorruptKeystore, KeyNotFound, KeyRevoked, KeystoreError
from ehr_client.keys import _files, _keyfile, _material
from ehr_client.keys._keyfile import Metadata
from ehr_client.keys._material import ENCRYPTION_KINDS, EncryptionKind, KeyKind

__all__ = ["DEFAULT_SCRYPT_N", "EncryptionKey", "KeyInfo", "Keystore"]

DEFAULT_SCRYPT_N: Final = 2**18
_WALLET_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_FILE_NAME = re.compile(r"(?:wallet-(?P<wallet>[a-z0-9][a-z0-9_-]{0,63})|(?P<kind>x25519|umbral)-v(?P<version>[1-9][0-9]{0,8}))\.json")
_CREATE_ATTEMPTS: Final = 16


@dataclass(frozen=True)
class KeyInfo:
    """Public facts about one key; never holds a secret.

    `public_key` is compressed SEC1 (33 bytes) for secp256k1 and umbral, raw 32 bytes for x25519.
    `address` is the checksummed Ethereum address of a wallet, None for encryption keys.
    """

    kind: KeyKind
    name: str
    version: int
    public_key: bytes
    address: str | None
    created: datetime
    revoked: datetime | None


@dataclass(frozen=True)
class EncryptionKey:
    """An unlocked encryption key. `secret` (32 bytes) is kept out of repr.

    x25519: ``X25519PrivateKey.from_private_bytes(secret)``;
    umbral: ``umbral_pre.SecretKey.from_be_bytes(secret)``.
    """

    kind: EncryptionKind
    version: int
    public_key: bytes
    secret: bytes = field(repr=False)


class Keystore:
    """The keys of one person in the directory `path` (created on first write)."""

    def __init__(self, path: Path | str, *, scrypt_n: int = DEFAULT_SCRYPT_N) -> None:
        if scrypt_n < 2 or scrypt_n & (scrypt_n - 1):
            raise KeystoreError("scrypt_n must be a power of two of at least 2")
        self._path = Path(path)
        self._scrypt_n = scrypt_n

    @property
    def path(self) -> Path:
        return self._path

    # -- wallets ---------------------------------------------------------------------------

    def generate_wallet(self, name: str, password: str, *, now: datetime | None = None) -> KeyInfo:
        """Create a new Ethereum wallet called `name`.

        Raises:
            KeystoreError: bad name, empty password, or a wallet of that name exists.
        """
        return self._store_wallet(name, _material.generate_secret("secp256k1"), password, now)

    def import_wallet(self, name: str, private_key: bytes | str, password: str, *, now: datetime | None = None) -> KeyInfo:
        """Store an existing wallet's private key (32 bytes, or 64 hex digits with or without 0x).

        Raises:
            KeystoreError: bad name or key, empty password, or a wallet of that name exists.
        """
        return self._store_wallet(name, _parse_private_key(private_key), password, now)

    def load_wallet(self, name: str, password: str) -> LocalAccount:
        """Decrypt wallet `name` into an eth-account signer.

        Raises:
            KeyNotFound, WrongPassword, CorruptKeystore.
        """
        path = self._wallet_path(name)
        doc, meta = self._read(path)
        return Account.from_key(_keyfile.open_secret(doc, meta, password, filename=path.name))

    def export_wallet(self, name: str, password: str) -> dict[str, Any]:
        """Return wallet `name` as a standard eth-account v3 keyfile (still encrypted under the
        same password), importable by geth, MetaMask or Ape. The password is checked first.

        Raises:
            KeyNotFound, WrongPassword, CorruptKeystore.
        """
        path = self._wallet_path(name)
        doc, meta = self._read(path)
        _keyfile.open_secret(doc, meta, password, filename=path.name)
        return _keyfile.public_keyfile(doc)

    # -- encryption keys -------------------------------------------------------------------

    def generate_encryption_key(
        self, kind: EncryptionKind = "x25519", *, password: str, now: datetime | None = None
    ) -> KeyInfo:
        """Create the next version (1 if none) of the `kind` encryption key; older versions stay.

        Raises:
            KeystoreError: unknown kind or empty password.
        """
        _check_kind(kind)
        _check_password(password)
        return self._create_version(kind, lambda: _material.generate_secret(kind), password, now)

    def _create_version(
        self, kind: EncryptionKind, make_secret: Callable[[], bytes], password: str, now: datetime | None
    ) -> KeyInfo:
        created = _now(now)
        for _ in range(_CREATE_ATTEMPTS):
            version = max(self._versions(kind), default=0) + 1
            secret = make_secret()
            meta = Metadata(kind, f"{kind}-v{version}", version, created, _material.public_key(kind, secret))
            try:
                self._create(self._key_path(kind, version), _keyfile.seal(secret, meta, password, scrypt_n=self._scrypt_n))
            except FileExistsError:
                continue  # another process took this version at the same moment
            return _info(meta)
        raise KeystoreError(f"could not claim a new {kind} key version: another process keeps rotating; retry")

    def import_encryption_key(
        self, kind: EncryptionKind, secret: bytes, *, password: str, now: datetime | None = None
    ) -> tuple[KeyInfo, bool]:
        """Store `secret` (e.g. a wallet-derived key) as the next `kind` version; (info, created).

        Idempotent: if the latest version already holds this key (same public key) and is not
        revoked, nothing is written and that version is returned with created False.

        Raises:
            KeystoreError: unknown kind, empty password, or `secret` is not a 32-byte key that the
                keyfile can hold (a valid secp256k1 scalar).
        """
        _check_kind(kind)
        _check_password(password)
        if not isinstance(secret, (bytes, bytearray)) or len(secret) != 32 or not _material.is_secp256k1_scalar(bytes(secret)):
            raise KeystoreError(f"not a {kind} secret this keystore can hold: 32 bytes, a valid secp256k1 scalar")
        public_key = _material.public_key(kind, bytes(secret))
        if self._versions(kind):
            latest = self.info(kind)
            if latest.public_key == public_key and latest.revoked is None:
                return latest, False
        return self._create_version(kind, lambda: bytes(secret), password, now), True

    def rotate_encryption_key(
        self, kind: EncryptionKind = "x25519", *, password: str, now: datetime | None = None
    ) -> KeyInfo:
        """Add version N+1 of an existing `kind` key. Old versions stay readable.

        Raises:
            KeyNotFound: there is no `kind` key to rotate (use generate_encryption_key).
        """
        _check_kind(kind)
        if not self._versions(kind):
            raise KeyNotFound(f"no {kind} key to rotate: generate one first")
        return self.generate_encryption_key(kind, password=password, now=now)

    def load_encryption_key(self, kind: EncryptionKind, password: str, *, version: int | None = None) -> EncryptionKey:
        """Decrypt version `version` of the `kind` key, or the latest version if None.

        An explicit version is returned even if revoked (old records must stay readable); the
        latest version is refused if revoked, because nothing new may be encrypted to it.

        Raises:
            KeyNotFound, WrongPassword, CorruptKeystore; KeyRevoked (latest version revoked).
        """
        meta_version = self._resolve_version(kind, version)
        path = self._key_path(kind, meta_version)
        doc, meta = self._read(path)
        if version is None and meta.revoked is not None:
            raise KeyRevoked(f"the latest {kind} key (version {meta_version}) is revoked: rotate to a new version")
        secret = _keyfile.open_secret(doc, meta, password, filename=path.name)
        return EncryptionKey(kind=kind, version=meta.version, public_key=meta.public_key, secret=secret)

    def info(self, kind: EncryptionKind, *, version: int | None = None) -> KeyInfo:
        """Public facts about version `version` (default latest) of the `kind` key; no password.

        Raises:
            KeyNotFound, CorruptKeystore.
        """
        _, meta = self._read(self._key_path(kind, self._resolve_version(kind, version)))
        return _info(meta)

    def mark_revoked(self, kind: EncryptionKind, version: int, *, now: datetime | None = None) -> KeyInfo:
        """Note locally that version `version` of the `kind` key was revoked. Idempotent: the
        first revocation time is kept. The key stays readable for old records.

        Raises:
            KeyNotFound, CorruptKeystore.
        """
        path = self._key_path(kind, self._resolve_version(kind, version))
        doc, meta = self._read(path)
        if meta.revoked is None:
            moment = _now(now)
            _files.replace(path, _keyfile.dumps(_keyfile.with_revoked(doc, moment)))
            meta = Metadata(meta.kind, meta.name, meta.version, meta.created, meta.public_key, moment)
        return _info(meta)

    # -- listing ---------------------------------------------------------------------------

    def list(self) -> builtins.list[KeyInfo]:
        """Every key in the store: wallets by name, then encryption keys by kind and version.

        Raises:
            CorruptKeystore: a key file cannot be read; the message names it.
        """
        if not self._path.is_dir():
            return []
        infos: builtins.list[KeyInfo] = []
        for path in sorted(self._path.iterdir()):
            if _FILE_NAME.fullmatch(path.name):
                infos.append(_info(self._read(path)[1]))
        return sorted(infos, key=lambda i: (i.kind != "secp256k1", i.kind, i.version, i.name))

    # -- internals -------------------------------------------------------------------------

    def _store_wallet(self, name: str, secret: bytes, password: str, now: datetime | None) -> KeyInfo:
        _check_password(password)
        path = self._wallet_path(name)
        meta = Metadata("secp256k1", name, 1, _now(now), _material.public_key("secp256k1", secret))
        try:
            self._create(path, _keyfile.seal(secret, meta, password, scrypt_n=self._scrypt_n))
        except FileExistsError:
            raise KeystoreError(f"a wallet named {name!r} already exists: choose another name") from None
        return _info(meta)

    def _create(self, path: Path, doc: dict[str, Any]) -> None:
        _files.ensure_dir(self._path)
        _files.create_new(path, _keyfile.dumps(doc))

    def _read(self, path: Path) -> tuple[dict[str, Any], Metadata]:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise KeyNotFound(f"no key file {path.name!r} in the keystore: check the name or generate the key") from None
        except OSError as exc:
            raise KeystoreError(f"cannot read key file {path.name!r}: {exc.strerror or type(exc).__name__}") from None
        doc, meta = _keyfile.parse(raw, filename=path.name)
        match = _FILE_NAME.fullmatch(path.name)
        if match is None or not _file_name_fits(match, meta):
            raise CorruptKeystore(
                f"key file {path.name!r} does not hold the key its name says (renamed or edited): restore it from a backup"
            )
        return doc, meta

    def _wallet_path(self, name: str) -> Path:
        if not _WALLET_NAME.fullmatch(name):
            raise KeystoreError(
                f"bad wallet name {name!r}: use 1-64 lowercase letters, digits, '-' or '_', starting with a letter or digit"
            )
        return self._path / f"wallet-{name}.json"

    def _key_path(self, kind: str, version: int) -> Path:
        return self._path / f"{kind}-v{version}.json"

    def _versions(self, kind: str) -> builtins.list[int]:
        if not self._path.is_dir():
            return []
        found = (_FILE_NAME.fullmatch(path.name) for path in self._path.iterdir())
        return sorted(int(m.group("version")) for m in found if m is not None and m.group("kind") == kind)

    def _resolve_version(self, kind: str, version: int | None) -> int:
        _check_kind(kind)
        if version is not None:
            if type(version) is not int or version < 1:
                raise KeyNotFound(f"no {kind} key version {version!r}: versions start at 1")
            return version
        versions = self._versions(kind)
        if not versions:
            raise KeyNotFound(f"no {kind} key in the keystore: generate one first")
        return versions[-1]


def _info(meta: Metadata) -> KeyInfo:
    address = None
    if meta.kind == "secp256k1":
        address = str(eth_keys.PublicKey.from_compressed_bytes(meta.public_key).to_checksum_address())
    return KeyInfo(meta.kind, meta.name, meta.version, meta.public_key, address, meta.created, meta.revoked)


def _file_name_fits(match: re.Match[str], meta: Metadata) -> bool:
    wallet = match.group("wallet")
    if wallet is not None:
        return meta.kind == "secp256k1" and meta.name == wallet
    kind, version = match.group("kind"), int(match.group("version"))
    return meta.kind == kind and meta.version == version and meta.name == f"{kind}-v{version}"


def _check_kind(kind: str) -> None:
    if kind not in ENCRYPTION_KINDS:
        raise KeystoreError(f"unknown encryption key type {kind!r}: use {' or '.join(ENCRYPTION_KINDS)}")


def _check_password(password: str) -> None:
    if not isinstance(password, str) or not password:
        raise KeystoreError("an empty password cannot protect a key: choose a password")


def _parse_private_key(private_key: bytes | str) -> bytes:
    if isinstance(private_key, str):
        text = private_key.strip().removeprefix("0x")
        if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
            raise KeystoreError("a private key is 64 hex digits (32 bytes), optionally prefixed with 0x")
        private_key = bytes.fromhex(text)
    if len(private_key) != 32 or not _material.is_secp256k1_scalar(bytes(private_key)):
        raise KeystoreError("not a valid secp256k1 private key: it must be 32 bytes, non-zero and below the curve order")
    return bytes(private_key)


def _now(now: datetime | None) -> datetime:
    moment = now if now is not None else datetime.now(timezone.utc)
    if moment.tzinfo is None:
        raise KeystoreError("timestamps must be timezone-aware (e.g. datetime.now(timezone.utc))")
    return moment.astimezone(timezone.utc).replace(microsecond=0)

