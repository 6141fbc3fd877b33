"""CIDv1 strings and bytes: computing them, converting them and validating untrusted ones.

Only the shapes this project produces are accepted: CIDv1, base32 lower multibase (`b...`),
sha2-256 multihash, codec raw (a blob stored as one block) or dag-pb (the root of a blob that
IPFS split into several blocks). Everything else raises `InvalidRecord`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from typing import NamedTuple, NewType

from ehr_client.errors import InvalidRecord

Cid = NewType("Cid", str)

CID_V1 = 0x01
RAW = 0x55
DAG_PB = 0x70
SHA2_256 = 0x12
SHA2_256_LENGTH = 32
MULTIBASE_BASE32_LOWER = "b"

_CODECS = frozenset({RAW, DAG_PB})
_MAX_VARINT_BYTES = 9
_MAX_CID_CHARS = 128
_BASE32_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz234567")


class CidInfo(NamedTuple):
    version: int
    codec: int
    hash_code: int
    digest: bytes


def encode_varint(value: int) -> bytes:
    if value < 0 or value >= 1 << (7 * _MAX_VARINT_BYTES):
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data: bytes, offset: int = 0) -> tuple[int, int]:
    """Return (value, offset after it); reject truncated, overlong and non-minimal encodings."""
    value = 0
    for i in range(_MAX_VARINT_BYTES):
        pos = offset + i
        if pos >= len(data):
            raise InvalidRecord("invalid CID: truncated varint")
        byte = data[pos]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if byte == 0 and i > 0:
                raise InvalidRecord("invalid CID: non-minimal varint")
            return value, pos + 1
    raise InvalidRecord("invalid CID: varint longer than 9 bytes")


def _binary(codec: int, digest: bytes) -> bytes:
    return encode_varint(CID_V1) + encode_varint(codec) + encode_varint(SHA2_256) + encode_varint(len(digest)) + digest


def _to_string(binary: bytes) -> Cid:
    return Cid(MULTIBASE_BASE32_LOWER + base64.b32encode(binary).decode("ascii").lower().rstrip("="))


def cid_from_digest(digest: bytes, *, codec: int = RAW) -> Cid:
    if len(digest) != SHA2_256_LENGTH:
        raise InvalidRecord(f"invalid CID: sha2-256 digest must be 32 bytes, got {len(digest)}")
    if codec not in _CODECS:
        raise InvalidRecord(f"invalid CID: unsupported codec 0x{codec:x}")
    return _to_string(_binary(codec, digest))


def cid_for_bytes(data: bytes) -> Cid:
    """CIDv1 raw of `data`: what `ipfs add --cid-version=1 --raw-leaves` prints for one chunk."""
    return cid_from_digest(hashlib.sha256(data).digest())


class CidHasher:
    """Incremental `cid_for_bytes` for data that arrives in pieces."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._sha.update(chunk)
        self.size += len(chunk)

    def cid(self) -> Cid:
        return cid_from_digest(self._sha.digest())


def cid_for_stream(chunks: Iterable[bytes]) -> Cid:
    hasher = CidHasher()
    for chunk in chunks:
        hasher.update(chunk)
    return hasher.cid()


def decode_cid_bytes(binary: bytes) -> CidInfo:
    if not isinstance(binary, (bytes, bytearray, memoryview)):
        raise InvalidRecord(f"invalid CID: expected bytes, got {type(binary).__name__}")
    data = bytes(binary)
    if data[:2] == b"\x12\x20":
        raise InvalidRecord("invalid CID: CIDv0 is not accepted, use CIDv1 (base32, starting with 'b')")
    version, pos = decode_varint(data)
    if version != CID_V1:
        raise InvalidRecord(f"invalid CID: version {version} is not supported, only CIDv1")
    codec, pos = decode_varint(data, pos)
    if codec not in _CODECS:
        raise InvalidRecord(f"invalid CID: unsupported codec 0x{codec:x} (expected raw or dag-pb)")
    hash_code, pos = decode_varint(data, pos)
    if hash_code != SHA2_256:
        raise InvalidRecord(f"invalid CID: unsupported multihash 0x{hash_code:x} (expected sha2-256)")
    length, pos = decode_varint(data, pos)
    if length != SHA2_256_LENGTH:
        raise InvalidRecord(f"invalid CID: sha2-256 digest length {length}, expected 32")
    digest = data[pos:]
    if len(digest) != SHA2_256_LENGTH:
        raise InvalidRecord(f"invalid CID: digest has {len(digest)} bytes, expected 32")
    return CidInfo(version, codec, hash_code, digest)


def decode_cid(cid: str) -> CidInfo:
    """Parse an untrusted CID string strictly (canonical lower base32 CIDv1 only)."""
    if not isinstance(cid, str):
        raise InvalidRecord(f"invalid CID: expected a string, got {type(cid).__name__}")
    if not cid or len(cid) > _MAX_CID_CHARS:
        raise InvalidRecord("invalid CID: empty or too long")
    if cid.startswith("Qm"):
        raise InvalidRecord("invalid CID: CIDv0 ('Qm...') is not accepted, use CIDv1 (base32, starting with 'b')")
    if cid[0] != MULTIBASE_BASE32_LOWER:
        raise InvalidRecord("invalid CID: expected base32 lower multibase (a string starting with 'b')")
    body = cid[1:]
    if not body or not set(body) <= _BASE32_ALPHABET:
        raise InvalidRecord("invalid CID: characters outside the lower-case base32 alphabet")
    try:
        binary = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
    except binascii.Error:
        raise InvalidRecord("invalid CID: not valid base32") from None
    info = decode_cid_bytes(binary)
    if _to_string(binary) != cid:
        raise InvalidRecord("invalid CID: non-canonical base32 encoding")
    return info


def parse_cid(cid: str) -> Cid:
    decode_cid(cid)
    return Cid(cid)


def cid_to_bytes(cid: str) -> bytes:
    """Binary CID (36 bytes for this project's CIDs), e.g. for storing on chain."""
    info = decode_cid(cid)
    return _binary(info.codec, info.digest)


def cid_from_bytes(binary: bytes) -> Cid:
    info = decode_cid_bytes(binary)
    return _to_string(_binary(info.codec, info.digest))


def is_raw(cid: str) -> bool:
    return decode_cid(cid).codec == RAW
