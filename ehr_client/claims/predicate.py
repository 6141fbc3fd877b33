"""What a proof states: bounds over one claim, all of which hold at once.

Text form (clauses joined by "and"), e.g.
    type = Observation and code = http://loinc.org|4548-4 and unit = % and value < 6.5 and date >= 2026-01-01
    type = Patient and age >= 18 at 2026-11-30
    type = Immunization and code in http://hl7.org/fhir/sid/cvx|03, http://hl7.org/fhir/sid/cvx|94
Clauses: `type = T`; `code = C` / `code in C, C…` (at most 8); `unit = U`; `value OP N` or
`value in N..N`; `date OP YYYY-MM-DD`; `age OP N at YYYY-MM-DD` (Patient: a bound on the birth date).
OP is one of < <= > >= =. A predicate is compared, shown and hashed in its canonical form
(`to_json`), so a verifier can require the exact predicate it asked for.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

from ehr_client.claims.model import (
    CODE_SET_SIZE,
    DATE_MAX,
    VALUE_MAX,
    VALUE_OFFSET,
    VALUE_SCALE,
    Claim,
    ClaimKind,
    code_element,
    decode_date,
    decode_value,
    encode_date,
    unit_element,
)

_CLAUSE = re.compile(r"^(type|code|unit|value|date|age)\s*(<=|>=|=|<|>|in\b)\s*(.+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Predicate:
    kind: ClaimKind
    codes: tuple[str, ...] = ()
    unit: str | None = None
    value_lo: int = 0
    value_hi: int = VALUE_MAX
    date_lo: int = 0
    date_hi: int = DATE_MAX

    @classmethod
    def parse(cls, text: str, *, kind: ClaimKind | None = None) -> Predicate:
        """Parse the text form; `kind` fills in a missing `type` clause. ValueError says what is wrong."""
        bounds: dict[str, Any] = {"codes": (), "unit": None, "value_lo": 0, "value_hi": VALUE_MAX,
                                  "date_lo": 0, "date_hi": DATE_MAX}
        found_kind = None
        clauses = [c.strip() for c in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE) if c.strip()]
        if not clauses:
            raise ValueError("the predicate is empty")
        for clause in clauses:
            match = _CLAUSE.match(clause)
            if not match:
                raise ValueError(f"cannot read the clause {clause!r}; see `ehr claim prove --help` for the form")
            name, op, arg = match.group(1).lower(), match.group(2).lower(), match.group(3).strip()
            if name == "type" and op == "=":
                found_kind = ClaimKind.parse(arg)
            elif name == "code" and op in ("=", "in"):
                codes = tuple(c.strip() for c in arg.split(",") if c.strip())
                if not 1 <= len(codes) <= CODE_SET_SIZE or any("|" not in c for c in codes):
                    raise ValueError(f"give 1 to {CODE_SET_SIZE} codes written system|code")
                bounds["codes"] = codes
            elif name == "unit" and op == "=":
                bounds["unit"] = arg
            elif name == "value":
                lo, hi = _value_bounds(op, arg)
                bounds["value_lo"], bounds["value_hi"] = max(bounds["value_lo"], lo), min(bounds["value_hi"], hi)
            elif name == "date":
                lo, hi = _date_bounds(op, arg)
                bounds["date_lo"], bounds["date_hi"] = max(bounds["date_lo"], lo), min(bounds["date_hi"], hi)
            elif name == "age":
                lo, hi = _age_bounds(op, arg)
                bounds["date_lo"], bounds["date_hi"] = max(bounds["date_lo"], lo), min(bounds["date_hi"], hi)
            else:
                raise ValueError(f"the clause {clause!r} uses an operator {name} does not take")
        kind = found_kind or kind
        if kind is None:
            raise ValueError("say which claim the predicate is about: add `type = Observation` (or Patient, …)")
        predicate = cls(kind, **bounds)
        if predicate.value_lo > predicate.value_hi or predicate.date_lo > predicate.date_hi:
            raise ValueError("the predicate's bounds exclude every value; no claim can satisfy it")
        if (predicate.value_lo, predicate.value_hi) != (0, VALUE_MAX) and predicate.unit is None:
            raise ValueError("a value bound needs its unit: add `unit = …` (e.g. `unit = %`)")
        return predicate

    def holds_for(self, claim: Claim) -> bool:
        return (claim.kind == self.kind
                and (self.unit is None or unit_element(self.unit) == claim.unit)
                and self.value_lo <= claim.value <= self.value_hi
                and self.date_lo <= claim.date <= self.date_hi
                and (not self.codes or claim.code in {code_element(c) for c in self.codes}))

    def describe(self) -> str:
        parts = [f"type = {self.kind.label}"]
        if self.codes:
            parts.append(f"code in {', '.join(self.codes)}" if len(self.codes) > 1 else f"code = {self.codes[0]}")
        if self.unit is not None:
            parts.append(f"unit = {self.unit}")
        if self.value_lo > 0:
            parts.append(f"value >= {decode_value(self.value_lo)}")
        if self.value_hi < VALUE_MAX:
            parts.append(f"value <= {decode_value(self.value_hi)}")
        if self.date_lo > 0:
            parts.append(f"date >= {decode_date(self.date_lo)}")
        if self.date_hi < DATE_MAX:
            parts.append(f"date <= {decode_date(self.date_hi)}")
        return " and ".join(parts)

    def as_struct(self) -> tuple[Any, ...]:
        """The IClaimRegistry.Predicate tuple."""
        elements = [code_element(c) for c in self.codes]
        codes = (elements + [elements[0]] * CODE_SET_SIZE)[:CODE_SET_SIZE] if elements else [0] * CODE_SET_SIZE
        return (int(self.kind), unit_element(self.unit) if self.unit is not None else 0, self.value_lo,
                self.value_hi, self.date_lo, self.date_hi, bool(self.codes), codes)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.kind.label, "codes": list(self.codes), "unit": self.unit, "valueLo": self.value_lo,
                "valueHi": self.value_hi, "dateLo": self.date_lo, "dateHi": self.date_hi}

    @classmethod
    def from_json(cls, data: Any) -> Predicate:
        """The canonical form back; ValueError/TypeError/KeyError on anything else."""
        if not isinstance(data, dict) or set(data) != {"type", "codes", "unit", "valueLo", "valueHi", "dateLo",
                                                       "dateHi"}:
            raise ValueError("not a predicate")
        codes = data["codes"]
        if not isinstance(codes, list) or len(codes) > CODE_SET_SIZE or not all(
                isinstance(c, str) and "|" in c for c in codes):
            raise ValueError("bad codes")
        unit = data["unit"]
        if unit is not None and not isinstance(unit, str):
            raise ValueError("bad unit")
        numbers = [data[k] for k in ("valueLo", "valueHi", "dateLo", "dateHi")]
        limits = [VALUE_MAX, VALUE_MAX, DATE_MAX, DATE_MAX]
        if not all(type(n) is int and 0 <= n <= top for n, top in zip(numbers, limits, strict=True)):
            raise ValueError("bad bounds")
        if not isinstance(data["type"], str):
            raise ValueError("bad type")
        return cls(ClaimKind.parse(data["type"]), tuple(codes), unit, *numbers)


def _number(arg: str) -> Decimal:
    try:
        value = Decimal(arg)
    except InvalidOperation:
        raise ValueError(f"{arg!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"{arg!r} is not a number")
    return value


def _scaled(value: Decimal, rounding: str) -> int:
    scaled = int((value * VALUE_SCALE).to_integral_value(rounding=rounding)) + VALUE_OFFSET
    return min(max(scaled, 0), VALUE_MAX)


def _value_bounds(op: str, arg: str) -> tuple[int, int]:
    if op == "in":
        low, sep, high = arg.partition("..")
        if not sep:
            raise ValueError("write a value range as `value in LOW..HIGH`")
        return _scaled(_number(low), ROUND_CEILING), _scaled(_number(high), ROUND_FLOOR)
    value = _number(arg)
    exact = value * VALUE_SCALE == (value * VALUE_SCALE).to_integral_value()
    floor, ceil = _scaled(value, ROUND_FLOOR), _scaled(value, ROUND_CEILING)
    return {
        "<": (0, ceil - 1), "<=": (0, floor), ">": (floor + 1, VALUE_MAX), ">=": (ceil, VALUE_MAX),
        "=": (ceil, floor) if exact else (1, 0),
    }[op]


def _date(arg: str) -> int:
    try:
        return encode_date(datetime.date.fromisoformat(arg))
    except ValueError:
        raise ValueError(f"{arg!r} is not a date; write YYYY-MM-DD") from None


def _date_bounds(op: str, arg: str) -> tuple[int, int]:
    if op == "in":
        raise ValueError("write a date range as two clauses: `date >= …` and `date <= …`")
    day = _date(arg)
    return {"<": (0, day - 1), "<=": (0, day), ">": (day + 1, DATE_MAX), ">=": (day, DATE_MAX),
            "=": (day, day)}[op]


def _age_bounds(op: str, arg: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{1,3})\s+at\s+(\S+)", arg)
    if not match or op in ("in", "="):
        raise ValueError("write an age bound as `age >= 18 at 2026-11-30` (or >, <, <=)")
    years, day = int(match.group(1)), _date(match.group(2))
    # Born on or before (day - N years) <=> at least N years old on day (YYYYMMDD keeps calendar order).
    born_by = day - years * 10000
    return {">=": (0, born_by), ">": (0, born_by - 10000), "<": (born_by + 1, DATE_MAX),
            "<=": (born_by - 10000 + 1, DATE_MAX)}[op]
