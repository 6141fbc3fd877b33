"""Check a parsed FHIR R4 JSON resource against the definitions, collecting every problem.

The rules, all from the R4 specification (json.html, datatypes.html, terminologies.html):
element names known for the type (choice elements spelt ``value`` + type name, primitives'
extensions as ``_name``); cardinality (min, max, arrays exactly where max > 1); JSON types and the
spec's regex for each primitive; no empty object, array or string and no ``null`` (except as a
position holder between a primitive array and its ``_`` array); one value per choice element;
element content rule ele-1 and extension rule ext-1; nested resources (contained, Bundle
entries, Parameters) checked as resources; required bindings whose value sets are enumerable.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any, Final, NamedTuple

from ehr_client.records.fhir_r4.definitions import Child, Definitions, Primitive, TypeDef, definitions

__all__ = ["InvariantTarget", "Problem", "resource_problems"]

_INT32: Final = range(-(2**31), 2**31)
_CODE_LIKE: Final = frozenset({"code", "string", "uri", "canonical", "url", "id", "markdown"})
_FORMATS: Final[Mapping[str, str]] = {
    "boolean": "must be true or false",
    "integer": "must be a JSON integer between -2147483648 and 2147483647",
    "positiveInt": "must be a JSON integer from 1 to 2147483647",
    "unsignedInt": "must be a JSON integer from 0 to 2147483647",
    "decimal": "must be a JSON number",
    "date": "must be a FHIR date: YYYY, YYYY-MM or YYYY-MM-DD",
    "dateTime": "must be a FHIR dateTime: YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss[.s] with a timezone",
    "instant": "must be a FHIR instant: YYYY-MM-DDThh:mm:ss[.s] with a timezone (Z or +hh:mm)",
    "time": "must be a FHIR time: hh:mm:ss[.s]",
    "id": "must be a FHIR id: 1 to 64 of A-Z a-z 0-9 - .",
    "oid": "must be a FHIR oid: urn:oid:1.2.3...",
    "uuid": "must be a FHIR uuid: urn:uuid: and a lowercase UUID",
    "code": "must be a FHIR code: no leading, trailing or double whitespace",
    "base64Binary": "must be base64 (A-Z a-z 0-9 + / =)",
    "uri": "must be a FHIR uri: no whitespace",
    "url": "must be a FHIR url: no whitespace",
    "canonical": "must be a FHIR canonical: no whitespace",
    "xhtml": "must be an XHTML <div> in the XHTML namespace",
}


class Problem(NamedTuple):
    """One failed rule: where (a FHIRPath-like path with indexes) and which rule."""

    path: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}: {self.rule}"


class InvariantTarget(NamedTuple):
    """A node that has FHIRPath invariants: its type and node path, its JSON and where it sits."""

    type_name: str
    node_path: str
    node: dict[str, Any]
    path: str
    resource: dict[str, Any]  # %resource: the resource the node is in
    root: dict[str, Any]  # %rootResource: for a contained resource, its container


def resource_problems(
    data: Any, path: str, *, invariant_targets: list[InvariantTarget] | None = None
) -> list[Problem]:
    """Every structural and binding problem of the resource `data`, found at `path`."""
    walk = _Walk(definitions(), invariant_targets)
    walk.resource(data, path)
    return walk.problems


class _Walk:
    __slots__ = ("defs", "problems", "targets", "resource_stack", "root_stack")

    def __init__(self, defs: Definitions, targets: list[InvariantTarget] | None) -> None:
        self.defs = defs
        self.problems: list[Problem] = []
        self.targets = targets
        self.resource_stack: list[dict[str, Any]] = []
        self.root_stack: list[dict[str, Any]] = []

    def add(self, path: str, rule: str) -> None:
        self.problems.append(Problem(path, rule))

    def resource(self, value: Any, path: str, *, contained: bool = False) -> None:
        if not isinstance(value, dict):
            self.add(path, "must be a JSON object holding a FHIR resource (with a resourceType)")
            return
        resource_type = value.get("resourceType")
        if not isinstance(resource_type, str) or not resource_type:
            self.add(path, "has no resourceType: a resource needs one, e.g. \"resourceType\": \"Observation\"")
            return
        if resource_type not in self.defs.resource_types:
            self.add(f"{path}.resourceType", f"{resource_type[:64]!r} is not a FHIR R4 resource type: check the spelling "
                     "and capitalisation (R4B and R5 types, and data types, are not R4 resources)")
            return
        self.resource_stack.append(value)
        self.root_stack.append(self.root_stack[-1] if contained and self.root_stack else value)
        self.node(value, self.defs.types[resource_type], "", path, is_resource=True)
        self.resource_stack.pop()
        self.root_stack.pop()

    def node(self, obj: dict[str, Any], typedef: TypeDef, node_path: str, path: str, *, is_resource: bool = False) -> None:
        if not obj:
            self.add(path, "empty object: remove the element instead")
            return
        members = typedef.nodes[node_path]
        counts: dict[str, int] = {}
        choices: dict[str, str] = {}
        for key, value in obj.items():
            if key == "resourceType" and is_resource:
                continue
            extension_of = key[1:] if key[:1] == "_" else ""
            child = members.get(extension_of or key)
            if child is None:
                self.unknown(key, typedef, path)
                continue
            element = child.element
            if element.is_choice:
                seen = choices.setdefault(element.name, extension_of or key)
                if seen != (extension_of or key):
                    self.add(f"{path}.{key}", f"{element.name} has a value already ({seen}): a choice element takes one, keep one")
                    continue
            sub = f"{path}.{key}"
            if value is None:
                self.add(sub, "null is not allowed in FHIR JSON: remove the element")
                continue
            if extension_of and child.type not in self.defs.primitives:
                self.unknown(key, typedef, path)
                continue
            repeats = element.max is None or element.max > 1
            if repeats:
                if not isinstance(value, list):
                    self.add(sub, f"must be a JSON array (cardinality {element.min}..{element.max or '*'})")
                    continue
                if not value:
                    self.add(sub, "empty array: remove the element instead")
                    continue
                partner = obj.get(key[1:] if extension_of else "_" + key)
                if extension_of and isinstance(partner, list) and len(partner) != len(value):
                    self.add(sub, f"must have as many items as {extension_of} ({len(partner)}), with null where one has none")
                for index, item in enumerate(value):
                    item_path = f"{sub}[{index}]"
                    if item is None:
                        if not (isinstance(partner, list) and index < len(partner) and partner[index] is not None):
                            self.add(item_path, "null is not allowed here: only as a placeholder matched in the _ array")
                    elif extension_of:
                        self.primitive_extension(item, item_path)
                    else:
                        self.value(item, child, typedef, item_path)
                count = len(value)
            else:
                if isinstance(value, list):
                    self.add(sub, f"must be a single value, not an array (cardinality {element.min}..{element.max})")
                    continue
                if extension_of:
                    self.primitive_extension(value, sub)
                else:
                    self.value(value, child, typedef, sub)
                count = 1
            if count > counts.get(element.name, 0):
                counts[element.name] = count
        for element in typedef.required[node_path]:
            count = counts.get(element.name, 0)
            if count < element.min and element.is_choice:
                stem = element.name[:-3]
                options = ", ".join(stem + _upper_first(type_code) for type_code in element.types)
                self.add(f"{path}.{element.name}", f"is required: add one of {options}")
            elif count < element.min:
                self.add(f"{path}.{element.name}", f"is required (cardinality {element.min}..{element.max or '*'}): add it")
            elif element.max is not None and count > element.max:
                self.add(f"{path}.{element.name}", f"has {count} values, at most {element.max} allowed")
        if not is_resource and all(key == "id" for key in obj):
            self.add(path, "ele-1: an element must have a value or children, not only an id")
        if typedef.name == "Extension" and not node_path:
            has_value = "value[x]" in choices
            if has_value == ("extension" in obj):
                self.add(path, "ext-1: an extension must have either extensions or a value[x], not both")
        if self.targets is not None and node_path in self.defs.constraints.get(typedef.name, ()):
            self.targets.append(InvariantTarget(
                typedef.name, node_path, obj, path, self.resource_stack[-1], self.root_stack[-1]))

    def unknown(self, key: str, typedef: TypeDef, path: str) -> None:
        if key == "fhir_comments":
            self.add(f"{path}.{key}", "fhir_comments is not an element of FHIR R4 (a DSTU2 JSON legacy): remove it")
        else:
            self.add(f"{path}.{key[:64]}", f"is not an element of FHIR R4 {typedef.name}: remove it or fix the spelling")

    def value(self, value: Any, child: Child, typedef: TypeDef, path: str) -> None:
        type_code = child.type
        primitive = self.defs.primitives.get(type_code)
        if primitive is not None:
            if self.primitive(value, primitive, path) and child.element.value_set and type_code in _CODE_LIKE:
                self.code(value, child.element.value_set, path)
            return
        if type_code == "Resource":
            self.resource(value, path, contained=child.element.name == "contained")
            return
        if not isinstance(value, dict):
            self.add(path, f"must be a JSON object ({type_code})")
            return
        if type_code in ("BackboneElement", "Element"):
            self.node(value, typedef, child.element.node, path)
            return
        self.node(value, self.defs.types[type_code], "", path)
        value_set = child.element.value_set
        if value_set:
            if type_code == "Coding":
                self.coding(value, value_set, path)
            elif type_code == "CodeableConcept":
                self.codeable_concept(value, value_set, path)

    def primitive(self, value: Any, primitive: Primitive, path: str) -> bool:
        kind = primitive.json
        if kind == "string":
            if not isinstance(value, str):
                self.add(path, f"must be a JSON string ({primitive.name})")
                return False
            if not value:
                self.add(path, "empty string: remove the element instead")
                return False
            if primitive.name == "xhtml":
                if not _is_xhtml_div(value):
                    self.add(path, _FORMATS["xhtml"])
                    return False
            elif primitive.pattern is not None and primitive.pattern.fullmatch(value) is None:
                self.add(path, _FORMATS.get(primitive.name, f"does not match the {primitive.name} format"))
                return False
            elif primitive.name in _DATED and not _real_calendar_date(value):
                self.add(path, f"{_FORMATS[primitive.name]}, on a day that exists (not e.g. 2023-02-30)")
                return False
            return True
        if kind == "boolean":
            if not isinstance(value, bool):
                self.add(path, _FORMATS["boolean"])
                return False
            return True
        if kind == "integer":
            low = {"positiveInt": 1, "unsignedInt": 0}.get(primitive.name, -(2**31))
            if isinstance(value, bool) or not isinstance(value, int) or value not in _INT32 or value < low:
                self.add(path, _FORMATS[primitive.name])
                return False
            return True
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            self.add(path, _FORMATS["decimal"])
            return False
        return True

    def primitive_extension(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            self.add(path, "must be a JSON object (the id and extensions of a primitive value)")
            return
        self.node(value, self.defs.types["Element"], "", path)

    def code(self, value: str, value_set: str, path: str) -> None:
        codes = self.defs.value_set_codes.get(value_set)
        if codes is not None and value not in codes:
            self.add(path, f"{value[:64]!r} is not in the required value set {value_set}")

    def coding(self, value: dict[str, Any], value_set: str, path: str) -> None:
        systems = self.defs.value_sets.get(value_set)
        code = value.get("code")
        if systems is None or not isinstance(code, str):
            return
        system = value.get("system")
        if not isinstance(system, str):
            self.add(path, f"a code from the required value set {value_set} needs its system")
        elif code not in systems.get(system, ()):
            self.add(path, f"{system[:100]}|{code[:64]} is not in the required value set {value_set}")

    def codeable_concept(self, value: dict[str, Any], value_set: str, path: str) -> None:
        systems = self.defs.value_sets.get(value_set)
        if systems is None:
            return
        codings = value.get("coding")
        for coding in codings if isinstance(codings, list) else ():
            system, code = (coding.get("system"), coding.get("code")) if isinstance(coding, dict) else (None, None)
            if isinstance(system, str) and isinstance(code, str) and code in systems.get(system, ()):
                return
        self.add(path, f"has no coding from the required value set {value_set}")


_DATED: Final = frozenset({"date", "dateTime", "instant"})


def _real_calendar_date(text: str) -> bool:
    """The regexes allow day 31 in any month; the calendar does not."""
    if len(text) < 10:
        return True
    try:
        date(int(text[0:4]), int(text[5:7]), int(text[8:10]))
    except ValueError:
        return False
    return True


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


_XHTML_NS: Final = "http://www.w3.org/1999/xhtml"


def _is_xhtml_div(text: str) -> bool:
    stripped = text.strip()
    head_end = stripped.find(">")
    head = stripped[:head_end]
    return (
        stripped.startswith("<div")
        and stripped.endswith("</div>")
        and head_end > 0
        and (f'xmlns="{_XHTML_NS}"' in head or f"xmlns='{_XHTML_NS}'" in head)
    )
