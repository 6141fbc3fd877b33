"""Parsing JSON that came from someone else (a store, a relayer, a file) without trusting it.

json's C parser recurses once per nesting level. Ape's dependency py_ecc raises Python's
recursion limit to 100,000, so in such a process a document nested a few hundred thousand levels
deep overflows the C stack and kills the process instead of raising. Depth is therefore checked
on the raw bytes, before parsing, and size is bounded too.
"""

from __future__ import annotations

import json
import re
from typing import Any

_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_INNERMOST_PAIR = re.compile(rb"\[\]|\{\}")


def reject_constant(name: str) -> Any:
    """`parse_constant` hook: NaN and Infinity are not JSON numbers."""
    raise ValueError(f"{name} is not a JSON number")


def object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`object_pairs_hook`: a member name twice in one object is an error, not last-one-wins."""
    result: dict[str, Any] = {}
    for key, item in pairs:
        if key in result:
            raise ValueError(f"member name {key!r} appears twice in one object; keep one")
        result[key] = item
    return result


def nesting_within(data: bytes, max_depth: int) -> bool:
    """Whether the brackets of `data` nest at most `max_depth` deep (False if unbalanced)."""
    brackets = _NOT_BRACKET.sub(b"", _JSON_STRING.sub(b"", data))
    for _ in range(max_depth):
        if not brackets:
            return True
        brackets = _INNERMOST_PAIR.sub(b"", brackets)
    return not brackets


def load_untrusted(data: bytes | str, *, max_depth: int, max_bytes: int) -> Any:
    """`json.loads` with bounds; anything out of bounds or malformed raises ValueError."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if len(raw) > max_bytes:
        raise ValueError(f"JSON document of {len(raw)} bytes exceeds {max_bytes}")
    if not nesting_within(raw, max_depth):
        raise ValueError(f"JSON nested deeper than {max_depth} levels (or unbalanced)")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"not JSON ({type(exc).__name__})") from None
