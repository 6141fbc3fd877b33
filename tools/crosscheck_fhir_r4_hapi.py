"""Compare the derived R4 table with a second, independent copy of HL7's 4.0.1 definitions.

The second copy is the XML in HAPI FHIR's ``hapi-fhir-validation-resources-r4`` jar on Maven
Central (``org/hl7/fhir/r4/model/profile/*.xml``, ``.../valueset/*.xml``). Fetch it with the
ordinary Maven client, then run this script::

    mvn -q dependency:get -Dartifact=ca.uhn.hapi.fhir:hapi-fhir-validation-resources-r4:7.4.0 -Dtransitive=false
    python tools/crosscheck_fhir_r4_hapi.py [--jar PATH]

It compares, for every resource and complex type: each element's path, cardinality, type codes
and required binding (from HAPI's snapshots), each error invariant's expression (from the
differentials), and the expansion of every required value set. Exit 0 and "no differences" when
they agree; 1 with the differences otherwise. tests/records/test_fhir_r4_table.py runs it when the
jar is in the local Maven repository.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_fhir_r4_tables import DEFAULT_OUT, STRUCTURAL_KEYS, expand_value_set, type_code, Unenumerable  # noqa: E402

HAPI_VERSION = "7.4.0"
DEFAULT_JAR = (Path.home() / ".m2" / "repository" / "ca" / "uhn" / "hapi" / "fhir" / "hapi-fhir-validation-resources-r4"
               / HAPI_VERSION / f"hapi-fhir-validation-resources-r4-{HAPI_VERSION}.jar")
_NS = "{http://hl7.org/fhir}"
_PREFIX = "org/hl7/fhir/r4/model/"


def _value(element: ElementTree.Element, name: str) -> str | None:
    child = element.find(_NS + name)
    return None if child is None else child.get("value")


def _resources(jar: zipfile.ZipFile, member: str) -> list[ElementTree.Element]:
    root = ElementTree.fromstring(jar.read(_PREFIX + member))
    return [list(resource)[0] for resource in root.iter(_NS + "resource") if len(resource)]


def _type_ref(element: ElementTree.Element) -> dict[str, Any]:
    extensions = [{"url": ext.get("url"), "valueUrl": _value(ext, "valueUrl")} for ext in element.findall(_NS + "extension")]
    return {"code": _value(element, "code"), "extension": extensions}


def _structure(jar: zipfile.ZipFile) -> tuple[dict[str, dict[str, tuple[Any, ...]]], dict[str, dict[str, list[tuple[str, str]]]]]:
    rows: dict[str, dict[str, tuple[Any, ...]]] = {}
    constraints: dict[str, dict[str, list[tuple[str, str]]]] = {}
    for member in ("profile/profiles-types.xml", "profile/profiles-resources.xml"):
        for sd in _resources(jar, member):
            if sd.tag != _NS + "StructureDefinition" or _value(sd, "derivation") != "specialization":
                continue
            if _value(sd, "kind") in ("logical", "primitive-type"):
                continue
            type_name = str(_value(sd, "type"))
            by_path: dict[str, tuple[Any, ...]] = {}
            snapshot = sd.find(_NS + "snapshot")
            for element in snapshot.findall(_NS + "element") if snapshot is not None else []:
                if _value(element, "path") == type_name:
                    continue
                base = element.find(_NS + "base")
                base_path = _value(base, "path") if base is not None else ""
                types = [type_code(_type_ref(t)) for t in element.findall(_NS + "type")]
                if base_path == "Resource.id":
                    types = ["id"]
                binding = element.find(_NS + "binding")
                value_set = ""
                if binding is not None and _value(binding, "strength") == "required" and _value(binding, "valueSet"):
                    value_set = str(_value(binding, "valueSet")).split("|")[0]
                reference = _value(element, "contentReference")
                by_path[str(_value(element, "path"))[len(type_name) + 1 :]] = (
                    int(str(_value(element, "min"))), _value(element, "max"), [] if reference else types, value_set)
            rows[type_name] = by_path
            differential = sd.find(_NS + "differential")
            for element in differential.findall(_NS + "element") if differential is not None else []:
                path = str(_value(element, "path"))
                relative = "" if path == type_name else path[len(type_name) + 1 :]
                for constraint in element.findall(_NS + "constraint"):
                    key, expression = _value(constraint, "key"), _value(constraint, "expression")
                    if _value(constraint, "severity") == "error" and expression and key not in STRUCTURAL_KEYS:
                        constraints.setdefault(type_name, {}).setdefault(relative, []).append((str(key), expression))
    return rows, constraints


def _concepts(element: ElementTree.Element) -> list[dict[str, Any]]:
    return [{"code": _value(c, "code"), "concept": _concepts(c)} for c in element.findall(_NS + "concept")]


def _compose_part(part: ElementTree.Element) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if _value(part, "system"):
        result["system"] = _value(part, "system")
    if part.findall(_NS + "concept"):
        result["concept"] = [{"code": _value(c, "code")} for c in part.findall(_NS + "concept")]
    if part.findall(_NS + "valueSet"):
        result["valueSet"] = [v.get("value") for v in part.findall(_NS + "valueSet")]
    if part.findall(_NS + "filter"):
        result["filter"] = [{} for _ in part.findall(_NS + "filter")]
    return result


def _terminology(jar: zipfile.ZipFile) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    sets: dict[str, dict[str, Any]] = {}
    systems: dict[str, dict[str, Any]] = {}
    for member in ("valueset/valuesets.xml", "valueset/v3-codesystems.xml"):
        for resource in _resources(jar, member):
            url = str(_value(resource, "url"))
            if resource.tag == _NS + "CodeSystem":
                systems.setdefault(url, {"content": _value(resource, "content"), "concept": _concepts(resource)})
            elif resource.tag == _NS + "ValueSet":
                compose = resource.find(_NS + "compose")
                if compose is None:
                    sets.setdefault(url, {})
                    continue
                sets.setdefault(url, {"compose": {
                    part: [_compose_part(p) for p in compose.findall(_NS + part)] for part in ("include", "exclude")}})
    return sets, systems


def differences(table: dict[str, Any], jar_path: Path) -> list[str]:
    found: list[str] = []
    with zipfile.ZipFile(jar_path) as jar:
        rows, constraints = _structure(jar)
        sets, systems = _terminology(jar)
    for type_name, hapi_rows in sorted(rows.items()):
        mine = {row[0]: (row[1], row[2], [] if row[4] else row[3], row[5]) for row in table["types"].get(type_name, {}).get("elements", [])}
        for path in sorted(set(hapi_rows) | set(mine)):
            if hapi_rows.get(path) != mine.get(path):
                found.append(f"{type_name}.{path}: HAPI {hapi_rows.get(path)} table {mine.get(path)}")
    mine_constraints = {t: {p: sorted((k, e) for k, e, _ in items) for p, items in by.items()} for t, by in table["constraints"].items()}
    for type_name, by_path in constraints.items():
        for path, items in by_path.items():
            ours = [item for item in mine_constraints.get(type_name, {}).get(path, [])
                    if type_name == "DomainResource" or not item[0].startswith("dom-")]
            if sorted(items) != ours:
                found.append(f"{type_name}.{path} invariants: HAPI {sorted(items)} table {ours}")
    for url, expansion in sorted(table["valueSets"].items()):
        try:
            theirs = {system: sorted(codes) for system, codes in sorted(expand_value_set(url, sets, systems).items())}
        except Unenumerable as exc:
            found.append(f"{url}: not enumerable from HAPI's copy ({exc})")
            continue
        if theirs != expansion:
            found.append(f"{url}: expansions differ")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jar", type=Path, default=DEFAULT_JAR)
    parser.add_argument("--table", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    found = differences(json.loads(args.table.read_text(encoding="utf-8")), args.jar)
    for line in found:
        print(line)
    print(f"{len(found)} differences" if found else "no differences")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
