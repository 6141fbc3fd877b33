"""Canonical JSON bytes, so the same resource always encrypts and hashes the same.

The rule is RFC 8785 (JCS) except for non-integer numbers:

- objects: members sorted by the UTF-16 code units of their names (JCS 3.2.3); duplicate names are
  rejected when parsing, not silently collapsed;
- no whitespace between tokens; separators ``,`` and ``:``;
- strings: UTF-8, never ``\\u``-escaped except ``"``, ``\\``, and the control characters below
  U+0020 (``\\b \\t \\n \\f \\r`` short forms, the rest as lowercase ``\\u00xx``), exactly as
  JCS 3.2.2.2; lone surrogates are rejected;
- ``true``, ``false``, ``null`` as is; integers (JSON numbers without fraction or exponent) in
  plain decimal;
- **decimals** (JSON numbers with a fraction or exponent) are kept as exact ``decimal.Decimal``
  values and written with ``str(Decimal)`` (the General Decimal Arithmetic to-scientific-string),
  with negative zero written as zero. JCS would render them as IEEE-754 doubles, which turns
  ``1.00`` into ``1``; in FHIR the trailing zeros are significant precision (1.0 g/dL is not 1.00
  g/dL), so we keep them. Equal value *and* equal precision always give equal bytes; text forms of
  the same decimal normalise (``1.0e2`` and ``1.0E+2`` both become ``1.0E+2``). Python floats
  passed in a dict are taken at their shortest round-trip ``repr`` (``0.1`` stays ``0.1``): pass
  ``Decimal`` or JSON text when the precision matters. NaN and infinities are rejected.

``canonicalize(parse_json(canonicalize(x))) == canonicalize(x)`` for every accepted value.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring as _json_string  # json.dumps(text, ensure_ascii=False), minus an encoder per call
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeAlias

from ehr_client._json import object_without_duplicates, reject_constant
from ehr_client.errors import InvalidRecord

__all__ = ["JsonValue", "MAX_DEPTH", "canonicalize", "parse_json"]

JsonValue: TypeAlias = "None | bool | int | Decimal | str | list[JsonValue] | dict[str, JsonValue]"
"""A parsed JSON value: objects are dicts, arrays lists, non-integer numbers Decimals."""

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted; FHIR resources nest far less."""


def parse_json(data: str | bytes) -> JsonValue:
    """Parse JSON text (bytes must be UTF-8, a leading BOM is ignored) keeping decimals exact.

    Raises:
        InvalidRecord: not UTF-8, not JSON, duplicate member names, NaN/Infinity, or nested deeper
            than :data:`MAX_DEPTH`.
    """
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidRecord(f"the record is not UTF-8 text (bad byte at offset {exc.start}): save it as UTF-8") from None
    else:
        text = data.removeprefix("\ufeff")
    try:
        value: JsonValue = json.loads(
            text,
            parse_float=Decimal,
            parse_constant=reject_constant,
            object_pairs_hook=object_without_duplicates,
        )
    except json.JSONDecodeError as exc:
        raise InvalidRecord(f"the record is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise InvalidRecord(f"the record nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # from the hooks below, or an integer too long to convert
        raise InvalidRecord(f"the record is not acceptable JSON: {exc}") from None
    _check_depth(value)
    return value


def canonicalize(value: object) -> bytes:
    """Return the canonical UTF-8 bytes of a JSON-compatible value (see the module docstring).

    Accepts dicts with string keys, lists or tuples, str, int, bool, None, Decimal and finite
    float.

    Raises:
        InvalidRecord: a value JSON cannot hold (NaN, non-string key, bytes, lone surrogate, ...),
            or nesting deeper than :data:`MAX_DEPTH`.
    """
    parts: list[str] = []
    _emit(value, parts, depth=0)
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRecord("the record contains a lone UTF-16 surrogate, which UTF-8 cannot encode: fix the text") from None


def _emit(value: object, out: list[str], *, depth: int) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRecord("the record contains NaN or Infinity, which JSON cannot hold")
        out.append(_decimal_text(Decimal(repr(value))))
    elif isinstance(value, Decimal):
        out.append(_decimal_text(value))
    elif isinstance(value, str):
        out.append(_json_string(value))
    elif isinstance(value, Mapping):
        _check_nesting(depth)
        _emit_object(value, out, depth=depth)
    elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        _check_nesting(depth)
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _emit(item, out, depth=depth + 1)
        out.append("]")
    else:
        raise InvalidRecord(f"the record contains a {type(value).__name__}, which JSON cannot hold")


def _emit_object(value: Mapping[Any, object], out: list[str], *, depth: int) -> None:
    for key in value:
        if not isinstance(key, str):
            raise InvalidRecord(f"the record has a {type(key).__name__} member name; JSON names are strings")
    out.append("{")
    for index, key in enumerate(sorted(value, key=_utf16_key)):
        if index:
            out.append(",")
        out.append(_json_string(key))
        out.append(":")
        _emit(value[key], out, depth=depth + 1)
    out.append("}")


def _check_nesting(depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise InvalidRecord(f"the record nests deeper than {MAX_DEPTH} levels")


def _utf16_key(name: str) -> bytes:
    # Big-endian UTF-16 bytes compare like the UTF-16 code unit sequences JCS sorts by.
    return name.encode("utf-16-be", "surrogatepass")


def _decimal_text(value: Decimal) -> str:
    if not value.is_finite():
        raise InvalidRecord("the record contains NaN or Infinity, which JSON cannot hold")
    return str(value.copy_abs() if value.is_zero() else value)


def _check_depth(value: JsonValue) -> None:
    stack: list[tuple[JsonValue, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            _check_nesting(depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
