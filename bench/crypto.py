"""Encryption speed: the envelope the client stores versus raw AES-256-GCM on the same bytes.

Raw: cryptography's AESGCM over the buffer in 1 MiB pieces, one nonce each, nothing else.
Envelope: exactly the bytes `EHRClient` stores for a record: the keyring header (the data key
sealed to two readers with X25519, the record's binding) followed by `iter_encrypt`'s chunked
STREAM envelope (HKDF key derivation, key commitment, 1 MiB chunks whose associated data binds
record id, version, patient, scope and author). Also reported: the
envelope with the sha256 the client computes while storing, which the chain anchors, against sha256
alone over the same bytes (issue 18: as stored >= 0.9x sha256 alone). Best of `rounds` for each, interleaved, in the same process; MB/s is 10^6 bytes per second.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ehr_client.crypto import HashedChunks, generate_data_key, generate_x25519_keypair, iter_encrypt, wrap_data_key
from ehr_client.package import PackageHeader, RecordBinding, Wrap
from ehr_client.records import Scope

PIECE = 1 << 20
MB = 1e6


@dataclass(frozen=True)
class CryptoResult:
    size: int
    rounds: int
    raw_MBps: float
    envelope_MBps: float
    envelope_sha256_MBps: float
    sha256_MBps: float


def _raw(buffer: memoryview, key: bytes) -> int:
    aead = AESGCM(key)
    total = 0
    for offset in range(0, len(buffer), PIECE):
        nonce = offset.to_bytes(12, "big")
        total += len(aead.encrypt(nonce, buffer[offset : offset + PIECE], None))
    return total


def _envelope(buffer: memoryview, readers: list[bytes]) -> Iterable[bytes]:
    data_key = generate_data_key()
    patient, author = "0x" + os.urandom(20).hex(), "0x" + os.urandom(20).hex()
    binding = RecordBinding.of(os.urandom(32), 1, patient, int(Scope.GENOMICS), author)
    aad = binding.associated_data
    wraps = tuple(Wrap(os.urandom(20), 1, wrap_data_key(data_key, public, associated_data=aad)) for public in readers)
    yield PackageHeader(1, "application/octet-stream", wraps, None, binding).to_bytes()
    yield from iter_encrypt(buffer, data_key, record_id=binding.record_id, version=1, context=binding.context)


def _consume(chunks: Iterable[bytes]) -> int:
    return sum(len(chunk) for chunk in chunks)


def _sha256(buffer: memoryview) -> int:
    digest = hashlib.sha256()
    for offset in range(0, len(buffer), PIECE):
        digest.update(buffer[offset : offset + PIECE])
    return len(buffer)


def _hashed(chunks: Iterable[bytes]) -> int:
    """As stored: through the client's own `HashedChunks`, as `RecordWriter.seal` wraps the package."""
    hashed = HashedChunks(chunks)
    total = sum(len(chunk) for chunk in hashed)
    assert len(hashed.sha256) == 32
    return total


def _best(run: Callable[[], int], rounds: int, size: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return size / MB / best


def measure(*, size: int = 64 << 20, rounds: int = 5) -> CryptoResult:
    buffer = memoryview(os.urandom(size))
    key = AESGCM.generate_key(bit_length=256)
    readers = [generate_x25519_keypair().public_key for _ in range(2)]
    raw = envelope = hashed = sha = 0.0
    for _ in range(rounds):  # interleaved, so a noisy neighbour hurts all four alike
        raw = max(raw, _best(lambda: _raw(buffer, key), 1, size))
        envelope = max(envelope, _best(lambda: _consume(_envelope(buffer, readers)), 1, size))
        hashed = max(hashed, _best(lambda: _hashed(_envelope(buffer, readers)), 1, size))
        sha = max(sha, _best(lambda: _sha256(buffer), 1, size))
    return CryptoResult(size, rounds, raw, envelope, hashed, sha)
