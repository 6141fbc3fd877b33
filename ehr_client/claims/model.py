"""A claim: the typed facts of one record that a predicate can be proven about, and their encoding.

Each record carrying claims yields one claim (kind, code, unit, value, date). In the circuit:
- code and unit are `hash_to_field` of their text ("system|code", the UCUM unit); 0 means none;
- value is the quantity times 1000 plus 2^47, so it is a non-negative integer below 2^48
  (quantities with more than three decimals carry no claim rather than a rounded one);
- date is the integer YYYYMMDD, whose order is the calendar's, so "age >= N at D" is
  "birth date <= D - N * 10000" (someone born on 29 February comes of age on 1 March).
"""

from __future__ import annotations

import datetime
import enum
from dataclasses import dataclass
from decimal import MAX_EMAX, MIN_EMIN, Decimal, localcontext

from ehr_client.claims.field import hash_to_field, split_id
from ehr_client.claims.poseidon import poseidon8
from ehr_client.records import Scope

VALUE_SCALE = 1000
VALUE_OFFSET = 1 << 47
VALUE_MAX = (1 << 48) - 1
DATE_MAX = (1 << 32) - 1
CODE_SET_SIZE = 8
_CODE_LABEL = b"ehr-claim-code/1"
_UNIT_LABEL = b"ehr-claim-unit/1"


class ClaimKind(enum.IntEnum):
    """The resource a claim comes from; numbers as in the circuit and IClaimRegistry.Predicate."""

    OBSERVATION = 1
    IMMUNIZATION = 2
    PATIENT = 3
    CONDITION = 4

    @property
    def label(self) -> str:
        return self.name.capitalize()

    @property
    def scopes(self) -> Scope:
        """The record categories this kind of claim may come from (ClaimRegistry checks the same)."""
        return _KIND_SCOPES[self]

    @classmethod
    def parse(cls, text: str) -> ClaimKind:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown claim type {text!r}; use one of {', '.join(k.label for k in cls)}") from None


def code_element(code: str) -> int:
    """The field element of a code written "system|code"."""
    return hash_to_field(_CODE_LABEL, code.encode())


def unit_element(unit: str) -> int:
    return hash_to_field(_UNIT_LABEL, unit.encode())


def encode_value(value: Decimal) -> int:
    """A quantity as the circuit compares it; ValueError when it has more than three decimals or is
    out of range."""
    if not value.is_finite():
        raise ValueError("not a finite number")
    with localcontext() as exact:  # as many digits as the value has, any exponent: nothing rounds
        exact.prec, exact.Emax, exact.Emin = len(value.as_tuple().digits) + 4, MAX_EMAX, MIN_EMIN
        scaled = value * VALUE_SCALE
        if scaled != scaled.to_integral_value():
            raise ValueError("more than three decimals")
    if not -VALUE_OFFSET <= scaled <= VALUE_MAX - VALUE_OFFSET:  # before int(): 1E+999999 stays cheap
        raise ValueError("out of range")
    return int(scaled) + VALUE_OFFSET


def decode_value(encoded: int) -> Decimal:
    return Decimal(encoded - VALUE_OFFSET) / VALUE_SCALE


def encode_date(day: datetime.date) -> int:
    return day.year * 10000 + day.month * 100 + day.day


def decode_date(encoded: int) -> str:
    return f"{encoded // 10000:04d}-{encoded // 100 % 100:02d}-{encoded % 100:02d}"


@dataclass(frozen=True)
class Claim:
    """One record's claim in circuit encoding. Its repr names only the kind: the rest is health data."""

    kind: ClaimKind
    code: int
    unit: int
    value: int
    date: int

    def __repr__(self) -> str:
        return f"Claim(kind={self.kind.label}, …)"

    def commitment(self, record_id: bytes, salt: int) -> int:
        high, low = split_id(record_id)
        return poseidon8([high, low, int(self.kind), self.code, self.unit, self.value, self.date, salt])


_KIND_SCOPES: dict[ClaimKind, Scope] = {
    ClaimKind.OBSERVATION: Scope.LAB | Scope.VITALS | Scope.PROCEDURES | Scope.IMAGING | Scope.MENTAL_HEALTH
    | Scope.SOCIAL_HISTORY | Scope.OTHER,
    ClaimKind.IMMUNIZATION: Scope.IMMUNIZATIONS,
    ClaimKind.PATIENT: Scope.DEMOGRAPHICS,
    ClaimKind.CONDITION: Scope.CONDITIONS | Scope.MENTAL_HEALTH,
}
