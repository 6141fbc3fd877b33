"""One key file: an eth-account v3 keyfile (scrypt, AES-128-CTR) plus an ``"ehr"`` sidecar.

::

    {"version": 3, "id": "...", "crypto": {... eth-account scrypt keyfile ...},
     "address": "..."                      # wallets only, as eth-account writes it
     "ehr": {"format": 1, "type": "x25519", "name": "x25519-v2", "version": 2,
             "created": "2025-01-01T00:00:00+00:00", "public_key": "<hex>",
             "revoked": null, "binding": "<hex>", "checksum": "<hex>"}}

The keyfile MAC only covers the ciphertext, so two more checks make any edit visible:

- ``checksum``: SHA-256 of the whole document without the checksum itself, checked before the
  password is tried, so a damaged file is reported as corrupt and not as a wrong password.
- ``binding``: HMAC-SHA256 of the sidecar's identity fields (type, name, version, created, public
  key) under a key derived (HKDF) from the secret, checked after decryption, so the metadata
  cannot be swapped to another key. ``revoked`` is outside the binding so that a key can be
  marked revoked without its password; it is a local note, the chain is authoritative.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eth_account import Account
from eth_keys import keys as eth_keys

from ehr_client.errors import CorruptKeystore, WrongPassword
from ehr_client.keys import _material
from ehr_client.keys._material import KeyKind

__all__ = ["FORMAT", "Metadata", "dumps", "open_secret", "parse", "public_keyfile", "seal", "with_revoked"]

FORMAT: Final = 1
MAX_FILE_BYTES: Final = 64 * 1024
_HEX64 = re.compile(r"[0-9a-f]{64}")
_PUBLIC_KEY_BYTES: Final[dict[str, int]] = {"secp256k1": 33, "x25519": 32, "umbral": 33}


@dataclass(frozen=True)
class Metadata:
    """The sidecar fields of one key file."""

    kind: KeyKind
    name: str
    version: int
    created: datetime
    public_key: bytes
    revoked: datetime | None = None


def seal(secret: bytes, meta: Metadata, password: str, *, scrypt_n: int) -> dict[str, Any]:
    """Encrypt `secret` under `password` and attach the sidecar for `meta`."""
    doc: dict[str, Any] = dict(Account.encrypt(secret, password, kdf="scrypt", iterations=scrypt_n))
    if meta.kind != "secp256k1":
        doc.pop("address", None)  # an Ethereum address of an x25519/umbral secret means nothing
    doc["ehr"] = {
        "format": FORMAT,
        "type": meta.kind,
        "name": meta.name,
        "version": meta.version,
        "created": meta.created.isoformat(timespec="seconds"),
        "public_key": meta.public_key.hex(),
        "revoked": None,
        "binding": _binding(secret, meta).hex(),
    }
    return with_revoked(doc, meta.revoked)


def with_revoked(doc: dict[str, Any], when: datetime | None) -> dict[str, Any]:
    """Return a copy of `doc` with its revoked marker set (or cleared) and a fresh checksum."""
    new = dict(doc)
    new["ehr"] = {**doc["ehr"], "revoked": when.isoformat(timespec="seconds") if when else None}
    new["ehr"].pop("checksum", None)
    new["ehr"]["checksum"] = _checksum(new)
    return new


def dumps(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("ascii")


def parse(raw: bytes, *, filename: str) -> tuple[dict[str, Any], Metadata]:
    """Parse and check a key file without its password.

    Raises:
        CorruptKeystore: not JSON, wrong structure, or the checksum does not match.
    """
    try:
        if len(raw) > MAX_FILE_BYTES:
            raise ValueError("file too large")
        doc = json.loads(raw.decode("utf-8"))
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        _check_crypto(doc)
        meta = _metadata(doc)
        if not hmac.compare_digest(_require_hex64(doc["ehr"], "checksum"), _checksum(doc)):
            raise ValueError("checksum mismatch")
    except (ValueError, KeyError, TypeError) as exc:  # UnicodeDecodeError and JSONDecodeError too
        raise _corrupt(filename, exc) from None
    return doc, meta


def open_secret(doc: dict[str, Any], meta: Metadata, password: str, *, filename: str) -> bytes:
    """Decrypt the secret of a parsed key file and check it against its sidecar.

    Raises:
        WrongPassword: the keyfile MAC does not match (the checksum already ruled out damage).
        CorruptKeystore: the secret does not match the public key, address or binding.
    """
    keyfile = {key: value for key, value in doc.items() if key != "ehr"}
    try:
        secret = bytes(Account.decrypt(keyfile, password))
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise WrongPassword(f"wrong password for key {meta.name!r}: try again") from None
        raise _corrupt(filename, exc) from None
    except (KeyError, TypeError) as exc:
        raise _corrupt(filename, exc) from None
    try:
        if len(secret) != 32 or _material.public_key(meta.kind, secret) != meta.public_key:
            raise ValueError("secret does not match its public key")
        if meta.kind == "secp256k1" and str(doc.get("address", "")).lower().removeprefix("0x") != _material.address(secret)[2:].lower():
            raise ValueError("secret does not match its address")
        if not hmac.compare_digest(_require_hex64(doc["ehr"], "binding"), _binding(secret, meta).hex()):
            raise ValueError("metadata binding mismatch")
    except ValueError as exc:
        raise _corrupt(filename, exc) from None
    return secret


def public_keyfile(doc: dict[str, Any]) -> dict[str, Any]:
    """The plain eth-account keyfile, without the sidecar."""
    return {key: value for key, value in doc.items() if key != "ehr"}


def _binding(secret: bytes, meta: Metadata) -> bytes:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"ehr-keystore metadata binding v1").derive(secret)
    identity = {
        "format": FORMAT,
        "type": meta.kind,
        "name": meta.name,
        "version": meta.version,
        "created": meta.created.isoformat(timespec="seconds"),
        "public_key": meta.public_key.hex(),
    }
    message = json.dumps(identity, sort_keys=True, separators=(",", ":")).encode("ascii")
    return hmac.new(key, message, hashlib.sha256).digest()


def _checksum(doc: dict[str, Any]) -> str:
    body = {**doc, "ehr": {key: value for key, value in doc["ehr"].items() if key != "checksum"}}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


def _check_crypto(doc: dict[str, Any]) -> None:
    if doc.get("version") != 3:
        raise ValueError("not a version 3 keyfile")
    crypto = doc["crypto"]
    if crypto["kdf"] != "scrypt" or crypto["cipher"] != "aes-128-ctr":
        raise ValueError("unsupported kdf or cipher")
    params = crypto["kdfparams"]
    n, r, p = params["n"], params["r"], params["p"]
    # Bounds keep a damaged file from asking scrypt for gigabytes of memory.
    if not all(type(x) is int for x in (n, r, p)) or not (2 <= n <= 2**20 and n & (n - 1) == 0):
        raise ValueError("scrypt parameters out of range")
    if not (1 <= r <= 16 and 1 <= p <= 16 and params["dklen"] == 32):
        raise ValueError("scrypt parameters out of range")
    for field_name, length in (("ciphertext", 64), ("mac", 64)):
        if not re.fullmatch(f"[0-9a-f]{{{length}}}", crypto[field_name]):
            raise ValueError(f"bad {field_name}")
    if not re.fullmatch(r"[0-9a-f]{1,32}", crypto["cipherparams"]["iv"]):
        raise ValueError("bad iv")


def _metadata(doc: dict[str, Any]) -> Metadata:
    ehr = doc["ehr"]
    kind = ehr["type"]
    if ehr["format"] != FORMAT or kind not in _material.KEY_KINDS:
        raise ValueError("unknown sidecar format or key type")
    version = ehr["version"]
    if type(version) is not int or version < 1 or not isinstance(ehr["name"], str):
        raise ValueError("bad name or version")
    public_key = bytes.fromhex(ehr["public_key"])
    if len(public_key) != _PUBLIC_KEY_BYTES[kind]:
        raise ValueError("bad public key length")
    if kind == "secp256k1":
        try:
            eth_keys.PublicKey.from_compressed_bytes(public_key)
        except Exception:  # eth-keys raises its own ValidationError
            raise ValueError("bad public key") from None
    revoked = ehr["revoked"]
    return Metadata(
        kind=kind,
        name=ehr["name"],
        version=version,
        created=_aware(ehr["created"]),
        public_key=public_key,
        revoked=None if revoked is None else _aware(revoked),
    )


def _aware(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("timestamp without timezone")
    return moment


def _require_hex64(ehr: dict[str, Any], key: str) -> str:
    value = ehr[key]
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise ValueError(f"bad {key}")
    return value


def _corrupt(filename: str, exc: BaseException) -> CorruptKeystore:
    reason = "not UTF-8 JSON" if isinstance(exc, UnicodeDecodeError) else str(exc) or type(exc).__name__
    if isinstance(exc, json.JSONDecodeError):
        reason = "not valid JSON"
    elif isinstance(exc, (KeyError, TypeError)):
        reason = "missing or mistyped field"
    return CorruptKeystore(
        f"key file {filename!r} is corrupted or was edited ({reason}): restore it from a backup"
    )

