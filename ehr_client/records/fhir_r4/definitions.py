"""The FHIR R4 (4.0.1) definitions as the validator walks them, loaded once per process.

The data is ``r4_definitions.json`` beside this module, derived from HL7's definition bundles by
``tools/gen_fhir_r4_tables.py`` (its docstring says from which package and why). This module only
indexes it: per type, per element node, which JSON member names are allowed and what each holds.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any, Final

__all__ = [
    "Child",
    "Definitions",
    "ElementDef",
    "Primitive",
    "TypeDef",
    "definitions",
]

TABLE_NAME: Final = "r4_definitions.json"


@dataclass(frozen=True, slots=True)
class ElementDef:
    """One element of a type: ``path`` is relative to the type ("component.code")."""

    name: str
    path: str
    min: int
    max: int | None  # None for "*"
    types: tuple[str, ...]
    node: str  # the node holding its children (its own path, or a contentReference target)
    value_set: str  # required binding, "" if none
    is_choice: bool


@dataclass(frozen=True, slots=True)
class Child:
    """A JSON member name resolved: which element, and which of its types this spelling means."""

    element: ElementDef
    type: str


@dataclass(frozen=True, slots=True)
class Primitive:
    name: str
    json: str  # "string", "boolean", "integer" or "decimal"
    pattern: re.Pattern[str] | None


@dataclass(frozen=True, slots=True)
class TypeDef:
    name: str
    kind: str  # "resource", "complex-type"
    abstract: bool
    nodes: dict[str, dict[str, Child]]  # node path ("" = root) -> JSON member name -> child
    required: dict[str, tuple[ElementDef, ...]]  # node path -> elements with min > 0 or a numeric max > 1


@dataclass(frozen=True, slots=True)
class Definitions:
    fhir_version: str
    source: dict[str, Any]
    types: dict[str, TypeDef]
    primitives: dict[str, Primitive]
    resource_types: frozenset[str]
    value_sets: dict[str, dict[str, frozenset[str]]]  # url -> system -> codes
    value_set_codes: dict[str, frozenset[str]]  # url -> codes of every system (for `code` elements)
    unenumerable: dict[str, str]  # url -> why it is not checked
    constraints: dict[str, dict[str, list[tuple[str, str, str]]]]  # type -> node path -> (key, expr, human)


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _index_type(name: str, raw: dict[str, Any]) -> TypeDef:
    elements: dict[str, dict[str, ElementDef]] = {"": {}}
    for path, minimum, maximum, types, reference, value_set in raw["elements"]:
        parent, _, element_name = path.rpartition(".")
        is_choice = element_name.endswith("[x]")
        element = ElementDef(
            name=element_name,
            path=path,
            min=minimum,
            max=None if maximum == "*" else int(maximum),
            types=tuple(types) if not reference else ("BackboneElement",),
            node=reference or path,
            value_set=value_set,
            is_choice=is_choice,
        )
        elements.setdefault(parent, {})[element_name] = element
        elements.setdefault(path, {})
    nodes: dict[str, dict[str, Child]] = {}
    for node_path, members in elements.items():
        table: dict[str, Child] = {}
        for element in members.values():
            if element.is_choice:
                stem = element.name[:-3]
                for type_code in element.types:
                    table[stem + _upper_first(type_code)] = Child(element, type_code)
            else:
                table[element.name] = Child(element, element.types[0] if element.types else "BackboneElement")
        nodes[node_path] = table
    required = {
        node_path: tuple(e for e in members.values() if e.min > 0 or (e.max is not None and e.max > 1))
        for node_path, members in elements.items()
    }
    return TypeDef(name=name, kind=raw["kind"], abstract=raw["abstract"], nodes=nodes, required=required)


@cache
def definitions() -> Definitions:
    """Load and index the table (first call only; about 0.1 s)."""
    raw = json.loads(files(__package__).joinpath(TABLE_NAME).read_text(encoding="utf-8"))
    types = {name: _index_type(name, body) for name, body in raw["types"].items()}
    primitives = {
        name: Primitive(name, body["json"], re.compile(body["regex"], re.ASCII) if body["regex"] else None)
        for name, body in raw["primitives"].items()
    }
    value_sets = {
        url: {system: frozenset(codes) for system, codes in systems.items()}
        for url, systems in raw["valueSets"].items()
    }
    return Definitions(
        fhir_version=raw["source"]["fhirVersion"],
        source=raw["source"],
        types=types,
        primitives=primitives,
        resource_types=frozenset(
            name for name, body in types.items() if body.kind == "resource" and not body.abstract
        ),
        value_sets=value_sets,
        value_set_codes={url: frozenset().union(*systems.values()) for url, systems in value_sets.items()},
        unenumerable=dict(raw["unenumerable"]),
        constraints={
            type_name: {path: [tuple(item) for item in items] for path, items in by_path.items()}  # type: ignore[misc]
            for type_name, by_path in raw["constraints"].items()
        },
    )
