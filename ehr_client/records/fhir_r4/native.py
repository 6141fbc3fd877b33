"""Invariants evaluated by Python equivalent to their FHIRPath, where fhirpathpy 2.2.4 fails.

- dom-3: fhirpathpy refuses the expression (``descendants().as(canonical)`` applies ``as()`` to
  a collection);
- per-1: fhirpathpy compares dateTimes wrongly across time zones and fractional seconds;
- rng-2: fhirpathpy cannot compare Quantities.

Each follows FHIRPath's comparison rules: when two values cannot be compared (a date against a
dateTime on the same day, Quantities in different units) the result is empty, which passes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Final

__all__ = ["HOLDS_WITHOUT", "IN_PYTHON"]

_DATE_TIME: Final = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2}))?)?)?")


def contained_are_referenced(resource: dict[str, Any]) -> bool:
    """dom-3: every contained resource is referenced as '#id' from somewhere in the resource, or
    itself refers to its container with '#'."""
    contained = resource.get("contained")
    if not isinstance(contained, list):
        return True
    everywhere = set(_strings(resource))
    return all(f"#{item.get('id', '')}" in everywhere or "#" in set(_strings(item)) for item in contained)


def period_in_order(period: dict[str, Any]) -> bool:
    """per-1: start <= end when both have a value."""
    start, end = period.get("start"), period.get("end")
    if not isinstance(start, str) or not isinstance(end, str):
        return True
    return _date_time_order(start, end) is not False


def range_in_order(value: dict[str, Any]) -> bool:
    """rng-2: low <= high when both are present and in the same unit."""
    low, high = value.get("low"), value.get("high")
    if not isinstance(low, dict) or not isinstance(high, dict):
        return True
    low_value, high_value = low.get("value"), high.get("value")
    if not isinstance(low_value, (int, Decimal)) or not isinstance(high_value, (int, Decimal)):
        return True
    if _unit(low) != _unit(high):
        return True  # comparing across units needs UCUM: empty, which passes
    return Decimal(low_value) <= Decimal(high_value)


IN_PYTHON: Final[Mapping[str, Callable[[dict[str, Any]], bool]]] = {
    "dom-3": contained_are_referenced,
    "per-1": period_in_order,
    "rng-2": range_in_order,
}


HOLDS_WITHOUT: Final[Mapping[str, tuple[str, frozenset[str]]]] = {
    "dom-2": ("contained.contained.empty()", frozenset({"contained"})),
    "dom-4": ("contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()", frozenset({"contained"})),
    "dom-5": ("contained.meta.security.empty()", frozenset({"contained"})),
    "obs-6": ("dataAbsentReason.empty() or value.empty()", frozenset({"dataAbsentReason"})),
    "obs-7": ("value.empty() or component.code.where(coding.intersect(%resource.code.coding).exists()).empty()",
              frozenset({"component"})),
    "qty-3": ("code.empty() or system.exists()", frozenset({"code"})),
    "ref-1": ("reference.startsWith('#').not() or (reference.substring(1).trace('url') in "
              "%rootResource.contained.id.trace('ids'))", frozenset({"reference"})),
}
"""Invariant key -> (its expression, elements): with none of the elements on the node (nor their
``_`` extension form), the expression's navigation from them is empty and so it holds, whatever
else the node carries. Keyed by the expression too: a definitions table whose text differs is
evaluated in full. Every resource pays dom-2/4/5, which otherwise cost three engine runs."""


def holds_without(key: str, expression: str) -> frozenset[str] | None:
    """The elements whose absence makes invariant `key` hold, when its expression is the one known."""
    known = HOLDS_WITHOUT.get(key)
    return known[1] if known is not None and known[0] == expression else None


def _unit(quantity: dict[str, Any]) -> tuple[Any, ...]:
    if "code" in quantity or "system" in quantity:
        return (quantity.get("system"), quantity.get("code"))
    return ("unit", quantity.get("unit"))


def _date_time_order(first: str, second: str) -> bool | None:
    """first <= second under FHIRPath rules; None (empty) when the precisions leave it open."""
    a, b = _DATE_TIME.fullmatch(first), _DATE_TIME.fullmatch(second)
    if a is None or b is None:
        return None
    if a.group(4) and b.group(4):
        return _instant(a) <= _instant(b)
    parts_a = [int(part) for part in a.groups()[:3] if part]
    parts_b = [int(part) for part in b.groups()[:3] if part]
    for left, right in zip(parts_a, parts_b):
        if left != right:
            return left < right
    return True if len(parts_a) == len(parts_b) and not (a.group(4) or b.group(4)) else None


def _instant(match: re.Match[str]) -> tuple[datetime, Decimal]:
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    zone = match.group(8)
    offset = timedelta(0) if zone == "Z" else (1 if zone[0] == "+" else -1) * timedelta(
        hours=int(zone[1:3]), minutes=int(zone[4:6]))
    moment = datetime(year, month, day, hour, minute, tzinfo=timezone(offset)) + timedelta(seconds=second)
    return moment.astimezone(timezone.utc), Decimal(match.group(7) or "0")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
