"""The bytes stored for one record version: a small keyring header, then the encrypted envelope.

    magic "EHRP" | format 1 | version u64 | media-type length u8 | media type (ASCII)
    | wrap count u8 | per wrap: reader address (20) | key version u32 | wrapped data key (93)
    | envelope (ehr_client.crypto stream format)

The chain anchors the sha256 of all of it, so a changed keyring is as detectable as a changed
ciphertext. The keyring holds the data key sealed for the readers known at write time (patient
and author); readers granted later get a key share (`ehr_client.sharing`). Nothing here is health
data: the media type says only "FHIR JSON" or "PDF".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ehr_client.crypto import WRAPPED_KEY_SIZE
from ehr_client.errors import DecryptionError

MAGIC = b"EHRP"
FORMAT = 1
MAX_WRAPS = 32
_FIXED = struct.Struct(">4sBQB")
_WRAP = struct.Struct(f">20sI{WRAPPED_KEY_SIZE}s")


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

    def to_bytes(self) -> bytes:
        media = self.media_type.encode("ascii")
        if len(media) > 255 or len(self.wraps) > MAX_WRAPS:
            raise ValueError("media type longer than 255 bytes or more than 32 readers")
        parts = [_FIXED.pack(MAGIC, FORMAT, self.version, len(media)), media, bytes([len(self.wraps)])]
        parts += [_WRAP.pack(w.reader, w.key_version, w.wrapped) for w in self.wraps]
        return b"".join(parts)

    def wrap_for(self, reader: bytes) -> list[Wrap]:
        return [w for w in self.wraps if w.reader == reader]


def parse_header(data: bytes) -> tuple[PackageHeader, int]:
    """The header and the offset where the envelope starts. Garbage raises DecryptionError."""
    try:
        magic, fmt, version, media_len = _FIXED.unpack_from(data, 0)
        if magic != MAGIC or fmt != FORMAT:
            raise DecryptionError()
        offset = _FIXED.size
        media = data[offset : offset + media_len]
        if len(media) != media_len:
            raise DecryptionError()
        offset += media_len
        count = data[offset]
        offset += 1
        wraps = []
        for _ in range(count):
            reader, key_version, wrapped = _WRAP.unpack_from(data, offset)
            wraps.append(Wrap(reader, key_version, wrapped))
            offset += _WRAP.size
        return PackageHeader(version, media.decode("ascii"), tuple(wraps)), offset
    except (struct.error, IndexError, UnicodeDecodeError):
        raise DecryptionError() from None


def max_header_size() -> int:
    return _FIXED.size + 255 + 1 + MAX_WRAPS * _WRAP.size
