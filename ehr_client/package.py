"""The bytes stored for one record version: a small keyring header, then the encrypted envelope.

    magic "EHRP" | format u8 | version u64 | media-type length u8 | media type (ASCII)
    | [format 3, 4] binding: record id (32) | patient (20) | scope u64 | author (20)
    | wrap count u8 | per wrap: reader address (20) | key version u32 | wrapped data key (93)
    | [format 2, 4] Umbral section: key version u32 | capsule length u16 | capsule
      | ciphertext length u16 | ciphertext
    | envelope (ehr_client.crypto stream format)

The binding is the record's on-chain identity (`RecordBinding`). The client writes formats 3 and 4
only; the envelope, every wrapped key and the Umbral capsule are sealed with associated data that
covers record id, version, patient, scope and author, so a blob re-listed under another id,
patient, scope or author does not decrypt, and a reader compares the header with the chain before
it tries. Formats 1 and 2 (no binding) still parse, and the client refuses them.
The Umbral section holds the data key encrypted to the patient's Umbral public key, so key
custodians can re-encrypt it to a grantee (audited release, `ehr_client.sharing.audited`).

The chain anchors the sha256 of all of it, so a changed keyring is as detectable as a changed
ciphertext. The keyring holds the data key sealed for the readers known at write time (patient
and author); readers granted later get a key share (`ehr_client.sharing`). Nothing here is health
data: the media type says only "FHIR JSON" or "PDF".
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import umbral_pre

from ehr_client.crypto import (
    DATA_KEY_SIZE, WRAPPED_KEY_SIZE, KeyWrapper, generate_data_key, iter_encrypt, record_associated_data,
    wrap_data_key,
)
from ehr_client.errors import DecryptionError

MAGIC = b"EHRP"
FORMAT = 1
FORMAT_UMBRAL = 2
FORMAT_BOUND = 3
FORMAT_BOUND_UMBRAL = 4
_BOUND = (FORMAT_BOUND, FORMAT_BOUND_UMBRAL)
_WITH_UMBRAL = (FORMAT_UMBRAL, FORMAT_BOUND_UMBRAL)
MAX_WRAPS = 32
MAX_UMBRAL_FIELD = 1024
_FIXED = struct.Struct(">4sBQB")
_BINDING = struct.Struct(">32s20sQ20s")
_WRAP = struct.Struct(f">20sI{WRAPPED_KEY_SIZE}s")
_UMBRAL_VERSION = struct.Struct(">I")
_LENGTH = struct.Struct(">H")
_UMBRAL_BINDING = b"ehr-umbral-data-key/v1"
UMBRAL_ERRORS: tuple[type[Exception], ...] = (
    ValueError, TypeError, umbral_pre.VerificationError,  # type: ignore[attr-defined]  # missing from its stubs
)
"""What umbral-pre raises for malformed or unverifiable capsules, fragments and keys."""


@dataclass(frozen=True)
class RecordBinding:
    """A record version's on-chain identity, which its ciphertext and keys are sealed to."""

    record_id: bytes
    version: int
    patient: bytes
    scope: int
    author: bytes

    @classmethod
    def of(cls, record_id: bytes, version: int, patient: str, scope: int, author: str) -> RecordBinding:
        return cls(bytes(record_id), version, bytes.fromhex(patient[2:]), int(scope), bytes.fromhex(author[2:]))

    @property
    def context(self) -> bytes:
        """What the associated data binds besides record id and version."""
        return self.patient + self.scope.to_bytes(8, "big") + self.author

    @property
    def associated_data(self) -> bytes:
        return record_associated_data(self.record_id, self.version, self.context)

    def to_bytes(self) -> bytes:
        return _BINDING.pack(self.record_id, self.patient, self.scope, self.author)


@dataclass(frozen=True)
class UmbralSeal:
    """The data key encrypted to the patient's Umbral key (on-chain version `key_version`).

    The plaintext is `record id || version || data key`, so a capsule copied into another record's
    header opens to a key that is refused.
    """

    key_version: int
    capsule: bytes
    ciphertext: bytes

    @classmethod
    def create(
        cls, public_key: bytes, key_version: int, record_id: bytes, version: int, data_key: bytes, context: bytes = b""
    ) -> UmbralSeal:
        capsule, ciphertext = umbral_pre.encrypt(
            umbral_pre.PublicKey.from_compressed_bytes(public_key),
            _umbral_plaintext(record_id, version, data_key, context),
        )
        return cls(key_version, bytes(capsule), bytes(ciphertext))

    def open_original(self, secret_key: bytes, record_id: bytes, version: int, context: bytes = b"") -> bytes:
        """The data key, with the patient's own Umbral secret key. Any failure: DecryptionError."""
        try:
            plaintext = umbral_pre.decrypt_original(
                umbral_pre.SecretKey.from_be_bytes(secret_key), umbral_pre.Capsule.from_bytes(self.capsule),
                self.ciphertext,
            )
        except (ValueError, TypeError):
            raise DecryptionError() from None
        return _data_key_from(plaintext, record_id, version, context)

    def open_reencrypted(
        self,
        receiving_secret: bytes,
        delegating_public: bytes,
        cfrags: Sequence[umbral_pre.VerifiedCapsuleFrag],
        record_id: bytes,
        version: int,
        context: bytes = b"",
    ) -> bytes:
        """The data key from verified re-encryption fragments. Any failure: DecryptionError."""
        try:
            plaintext = umbral_pre.decrypt_reencrypted(
                umbral_pre.SecretKey.from_be_bytes(receiving_secret),
                umbral_pre.PublicKey.from_compressed_bytes(delegating_public),
                umbral_pre.Capsule.from_bytes(self.capsule),
                list(cfrags),
                self.ciphertext,
            )
        except (ValueError, TypeError):
            raise DecryptionError() from None
        if plaintext is None:
            raise DecryptionError()
        return _data_key_from(plaintext, record_id, version, context)

    def to_bytes(self) -> bytes:
        if len(self.capsule) > MAX_UMBRAL_FIELD or len(self.ciphertext) > MAX_UMBRAL_FIELD:
            raise ValueError("Umbral capsule or ciphertext too long")
        return b"".join([
            _UMBRAL_VERSION.pack(self.key_version), _LENGTH.pack(len(self.capsule)), self.capsule,
            _LENGTH.pack(len(self.ciphertext)), self.ciphertext,
        ])


def _umbral_plaintext(record_id: bytes, version: int, data_key: bytes, context: bytes) -> bytes:
    return _UMBRAL_BINDING + record_id + version.to_bytes(8, "big") + context + bytes(data_key)


def _data_key_from(plaintext: bytes, record_id: bytes, version: int, context: bytes) -> bytes:
    prefix = _UMBRAL_BINDING + record_id + version.to_bytes(8, "big") + context
    if len(plaintext) != len(prefix) + DATA_KEY_SIZE or not hmac.compare_digest(plaintext[: len(prefix)], prefix):
        raise DecryptionError()
    return bytes(plaintext[len(prefix) :])


@dataclass(frozen=True)
class Wrap:
    """The data key sealed for one reader's X25519 key version."""

    reader: bytes
    key_version: int
    wrapped: bytes


@dataclass(frozen=True)
class PackageHeader:
    version: int
    media_type: str
    wraps: tuple[Wrap, ...]
    umbral: UmbralSeal | None = None
    binding: RecordBinding | None = None

    def to_bytes(self) -> bytes:
        media = self.media_type.encode("ascii")
        if len(media) > 255 or len(self.wraps) > MAX_WRAPS:
            raise ValueError("media type longer than 255 bytes or more than 32 readers")
        if self.binding is None:
            fmt = FORMAT if self.umbral is None else FORMAT_UMBRAL
        else:
            if self.binding.version != self.version:
                raise ValueError("the binding names another version than the header")
            fmt = FORMAT_BOUND if self.umbral is None else FORMAT_BOUND_UMBRAL
        parts = [_FIXED.pack(MAGIC, fmt, self.version, len(media)), media]
        if self.binding is not None:
            parts.append(self.binding.to_bytes())
        parts.append(bytes([len(self.wraps)]))
        parts += [_WRAP.pack(w.reader, w.key_version, w.wrapped) for w in self.wraps]
        if self.umbral is not None:
            parts.append(self.umbral.to_bytes())
        return b"".join(parts)

    def wrap_for(self, reader: bytes) -> list[Wrap]:
        return [w for w in self.wraps if w.reader == reader]


@dataclass(frozen=True)
class Recipients:
    """Whom a record's data key is sealed to: X25519 public keys by reader address (20 bytes), each
    with its on-chain key version, and the patient's Umbral public key (version, key) if published.
    Public keys only, so sealing can run where no private key is."""

    readers: Mapping[bytes, tuple[int, bytes]]
    umbral: tuple[int, bytes] | None


def sealed_package(
    binding: RecordBinding, media_type: str, plaintext: bytes | BinaryIO, recipients: Recipients, *,
    wrapper: KeyWrapper | None = None,
) -> Iterator[bytes]:
    """The stored bytes of one record version, header first: a fresh data key sealed to each
    recipient (through `wrapper` for the records of one batch), and the plaintext encrypted under
    it, all bound to `binding`."""
    data_key = generate_data_key()
    aad = binding.associated_data
    wrap = wrapper.wrap if wrapper is not None else wrap_data_key
    wraps = tuple(Wrap(reader, version, wrap(data_key, public, associated_data=aad))
                  for reader, (version, public) in sorted(recipients.readers.items()))
    umbral = None if recipients.umbral is None else UmbralSeal.create(
        recipients.umbral[1], recipients.umbral[0], binding.record_id, binding.version, data_key, binding.context)
    yield PackageHeader(binding.version, media_type, wraps, umbral, binding).to_bytes()
    yield from iter_encrypt(plaintext, data_key, record_id=binding.record_id, version=binding.version,
                            context=binding.context)


def parse_header(data: bytes) -> tuple[PackageHeader, int]:
    """The header and the offset where the envelope starts. Garbage raises DecryptionError."""
    try:
        magic, fmt, version, media_len = _FIXED.unpack_from(data, 0)
        if magic != MAGIC or fmt not in (FORMAT, FORMAT_UMBRAL, *_BOUND):
            raise DecryptionError()
        offset = _FIXED.size
        media = data[offset : offset + media_len]
        if len(media) != media_len:
            raise DecryptionError()
        offset += media_len
        binding = None
        if fmt in _BOUND:
            record_id, patient, scope, author = _BINDING.unpack_from(data, offset)
            binding = RecordBinding(record_id, version, patient, scope, author)
            offset += _BINDING.size
        count = data[offset]
        offset += 1
        wraps = []
        for _ in range(count):
            reader, key_version, wrapped = _WRAP.unpack_from(data, offset)
            wraps.append(Wrap(reader, key_version, wrapped))
            offset += _WRAP.size
        umbral = None
        if fmt in _WITH_UMBRAL:
            umbral, offset = _parse_umbral(data, offset)
        return PackageHeader(version, media.decode("ascii"), tuple(wraps), umbral, binding), offset
    except (struct.error, IndexError, UnicodeDecodeError):
        raise DecryptionError() from None


def _parse_umbral(data: bytes, offset: int) -> tuple[UmbralSeal, int]:
    (key_version,) = _UMBRAL_VERSION.unpack_from(data, offset)
    offset += _UMBRAL_VERSION.size
    fields = []
    for _ in range(2):
        (length,) = _LENGTH.unpack_from(data, offset)
        offset += _LENGTH.size
        value = bytes(data[offset : offset + length])
        if length > MAX_UMBRAL_FIELD or len(value) != length:
            raise DecryptionError()
        fields.append(value)
        offset += length
    return UmbralSeal(key_version, fields[0], fields[1]), offset


def max_header_size() -> int:
    umbral = _UMBRAL_VERSION.size + 2 * (_LENGTH.size + MAX_UMBRAL_FIELD)
    return _FIXED.size + 255 + _BINDING.size + 1 + MAX_WRAPS * _WRAP.size + umbral
