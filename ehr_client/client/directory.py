"""Public keys members published in KeyRegistry, looked up for sealing data keys to them."""

from __future__ import annotations

import time
from typing import Any

from eth_utils import to_checksum_address

from ehr_client.chain.calls import Call, decoded
from ehr_client.chain.client import ChainClient
from ehr_client.chain.types import KeyType
from ehr_client.errors import KeyNotFound, TransactionReverted

UMBRAL_KEY_CACHE_SECONDS = 10.0


class KeyDirectory:
    def __init__(self, chain: ChainClient) -> None:
        self.chain = chain
        self._umbral: dict[str, tuple[float, tuple[int, bytes] | None]] = {}

    def encryption_key_of(self, account: str) -> tuple[int, bytes]:
        """The current, non-revoked X25519 key a member published: (on-chain version, public key)."""
        try:
            version, key = self.chain.call(
                self.chain.keys.functions.currentKey(to_checksum_address(account), KeyType.X25519),
                action="look up encryption key",
            )
        except TransactionReverted:
            raise KeyNotFound(
                f"{account} has no active encryption key on chain; they must publish one (`ehr keys publish`)"
            ) from None
        return int(version), bytes(key)

    def key_calls(self, account: str) -> list[Call]:
        """The view calls behind `encryption_key_of` and `umbral_key_of`, for a caller's own batch;
        give their answers to `from_answers`."""
        account = to_checksum_address(account)
        return [Call(self.chain.keys, "currentKey", (account, KeyType.X25519)),
                Call(self.chain.keys, "currentKey", (account, KeyType.UMBRAL))]

    def from_answers(self, account: str, calls: list[Call], answers: list[Any], *,
                     need_encryption_key: bool) -> tuple[int, bytes] | None:
        """The answers to `key_calls`: the Umbral key is remembered as `umbral_key_of` would; the
        encryption key is returned when needed (KeyNotFound as `encryption_key_of` raises it)."""
        try:
            version, key = decoded(calls[1], answers[1], action="look up Umbral key")
            umbral: tuple[int, bytes] | None = (int(version), bytes(key))
        except TransactionReverted:
            umbral = None
        self._umbral[to_checksum_address(account)] = (time.monotonic(), umbral)
        if not need_encryption_key:
            return None
        try:
            version, key = decoded(calls[0], answers[0], action="look up encryption key")
        except TransactionReverted:
            raise KeyNotFound(
                f"{account} has no active encryption key on chain; they must publish one (`ehr keys publish`)"
            ) from None
        return int(version), bytes(key)

    def umbral_key_of(self, account: str, *, cached: bool = False) -> tuple[int, bytes] | None:
        """(on-chain version, compressed public key) of `account`'s current Umbral key, or None.

        With `cached`, an answer up to a few seconds old is reused (a batch of writes asks once).
        """
        account = to_checksum_address(account)
        hit = self._umbral.get(account)
        if cached and hit is not None and time.monotonic() - hit[0] < UMBRAL_KEY_CACHE_SECONDS:
            return hit[1]
        try:
            version, key = self.chain.call(self.chain.keys.functions.currentKey(account, KeyType.UMBRAL),
                                           action="look up Umbral key")
            found: tuple[int, bytes] | None = (int(version), bytes(key))
        except TransactionReverted:
            found = None
        self._umbral[account] = (time.monotonic(), found)
        return found

    def forget_umbral(self, account: str) -> None:
        self._umbral.pop(to_checksum_address(account), None)

    def umbral_key_at(self, account: str, version: int) -> bytes:
        """A published Umbral key version of `account`, revoked or not (old records name old versions)."""
        try:
            key = self.chain.call(
                self.chain.keys.functions.keyAt(to_checksum_address(account), KeyType.UMBRAL, version),
                action="look up Umbral key version",
            )
        except TransactionReverted:
            raise KeyNotFound(f"{account} never published Umbral key version {version}") from None
        return bytes(key[0])
