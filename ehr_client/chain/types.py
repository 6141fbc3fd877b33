"""The contracts' enums, declared once (tests check them against the shipped ABIs' NatSpec order)."""

from __future__ import annotations

from enum import IntEnum


class Role(IntEnum):
    """IConsortium.Role."""

    NONE = 0
    PROVIDER = 1
    INSURER = 2
    LAB = 3
    AUDITOR = 4
    KEY_CUSTODIAN = 5
    VALIDATOR = 6


class Access(IntEnum):
    """IConsentManager.Access."""

    NONE = 0
    READ = 1
    AMEND = 2


class Status(IntEnum):
    """IRecordRegistry.Status."""

    NONE = 0
    ACTIVE = 1
    SUPERSEDED = 2
    TOMBSTONED = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class KeyType(IntEnum):
    """IKeyRegistry.KeyType."""

    NONE = 0
    X25519 = 1
    SECP256K1 = 2
    UMBRAL = 3


WRITER_ROLES = frozenset({Role.PROVIDER, Role.LAB})
"""Roles that may write (amend) a patient's records with a grant."""


class Action(IntEnum):
    """IConsortium.Action."""

    ADMIT = 0
    REINSTATE = 1
    ADD_GOVERNOR = 2
    REMOVE_GOVERNOR = 3
    SET_THRESHOLD = 4
