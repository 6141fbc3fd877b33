"""The FHIRPath invariants (error-severity constraints) of R4 4.0.1, evaluated with fhirpathpy.

Every constraint of the definitions table is evaluated on each node it applies to, except:

- those that need a terminology server, a reference resolver or an XHTML checker
  (:data:`NEEDS_SERVICES`: ``memberOf``, ``conformsTo``, ``resolve()``, ``htmlChecks``, ...);
- ele-1 and ext-1, which the structural check enforces (and which the table leaves out);
- :data:`SPEC_ERRATA`: app-4, whose 4.0.1 expression contradicts the 4.0.1 code system;
- :data:`FHIRPATHPY_FAILS`: expressions fhirpathpy 2.2.4 cannot parse or evaluate correctly, each
  with the reason. ``skipped()`` lists all of them with why.

fhirpathpy lacks hasValue(), supplied here; dom-3, per-1 and rng-2, which it fails on, are
evaluated by equivalent Python (``native.IN_PYTHON``).

An invariant fails when its expression yields ``false``; an empty result counts as a pass.
If fhirpathpy raises on an expression at run time, that invariant is skipped for that node,
logged once (key and element path, never data) and listed by ``skipped()``: an engine bug must
not refuse a valid record. fhirpathpy annotates what it evaluates, so it is given a copy or a
parse nobody else holds. Each type's expressions are compiled once, when a resource of that type
is first validated (compiling all of R4's costs about 0.45 s, a worker process's whole start).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, Final, NamedTuple

import fhirpathpy
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

from ehr_client.records.fhir_r4.definitions import definitions
from ehr_client.records.fhir_r4.native import IN_PYTHON, holds_without
from ehr_client.records.fhir_r4.structure import InvariantTarget, Problem

__all__ = ["FHIRPATHPY_FAILS", "NEEDS_SERVICES", "SPEC_ERRATA", "SkippedInvariant", "invariant_problems", "skipped"]

NEEDS_SERVICES: Final = ("memberOf(", "conformsTo(", "resolve()", "htmlChecks", "htmlchecks", "%terminologies",
                         "subsumes(", "subsumedBy(", "%vs-", "%ext-")
"""Markers of expressions that need something beyond the resource itself."""

SPEC_ERRATA: Final[Mapping[str, str]] = {
    "app-4": "HL7's 4.0.1 expression tests status = 'no-show', but the R4 code is 'noshow': as written it "
             "refuses a valid no-show appointment that has a cancelationReason",
}
"""Invariants whose 4.0.1 expression contradicts the 4.0.1 specification itself."""

FHIRPATHPY_FAILS: Final[Mapping[str, str]] = {}
"""Invariant key or expression fragment -> why fhirpathpy cannot evaluate it. Empty with 2.2.4:
the three it fails on (found by evaluating every invariant on the official examples) are in
``native.IN_PYTHON``; a new fhirpathpy failing on more is recorded at run time (``skipped()``)."""

_log = logging.getLogger(__name__)
_MODEL: Final = models["r4"]
_ENVIRONMENT: Final = {"ucum": "http://unitsofmeasure.org", "sct": "http://snomed.info/sct", "loinc": "http://loinc.org"}

Compiled = Callable[[Any, dict[str, Any]], list[Any]]
# key, human text, fhirpathpy function (None: see IN_PYTHON), elements whose absence makes it hold
Check = tuple[str, str, Compiled | None, frozenset[str] | None]


def _ignore_trace(*_: object) -> None:
    """dom-3 and ref-1 call trace(); fhirpathpy would print the traced values (health data)."""


def _has_value(inputs: list[Any]) -> bool:
    """FHIRPath hasValue(), which fhirpathpy 2.2.4 lacks: one primitive that has a value."""
    return len(inputs) == 1 and inputs[0] is not None and not isinstance(inputs[0], (dict, list))


_OPTIONS: Final = {
    "traceFn": _ignore_trace,
    "userInvocationTable": {"hasValue": {"fn": _has_value, "arity": {0: []}}},
}


class SkippedInvariant(NamedTuple):
    type_name: str
    path: str
    key: str
    reason: str


@cache
def _compiled(type_name: str) -> tuple[dict[str, list[Check]], tuple[SkippedInvariant, ...]]:
    """One type's checks by node path, compiled on first use (a process that validates Observations
    compiles only theirs), and the invariants of the type that are not evaluated."""
    table: dict[str, list[Check]] = {}
    skipped_list: list[SkippedInvariant] = []
    for node_path, items in definitions().constraints.get(type_name, {}).items():
        for key, expression, human in items:
            marker = next((m for m in NEEDS_SERVICES if m in expression), None)
            if marker is not None:
                skipped_list.append(SkippedInvariant(type_name, node_path, key, f"needs a service ({marker.strip('(%')})"))
                continue
            if key in SPEC_ERRATA:
                skipped_list.append(SkippedInvariant(type_name, node_path, key, SPEC_ERRATA[key]))
                continue
            if key in IN_PYTHON:
                table.setdefault(node_path, []).append((key, human, None, None))
                continue
            failure = next((why for what, why in FHIRPATHPY_FAILS.items() if what in (key, expression)
                            or ("(" in what and what in expression)), None)
            if failure is not None:
                skipped_list.append(SkippedInvariant(type_name, node_path, key, failure))
                continue
            try:
                function = fhirpathpy.compile(expression, _MODEL, _OPTIONS)
            except Exception as exc:  # noqa: BLE001 - the parser raises many kinds; each is recorded
                skipped_list.append(SkippedInvariant(type_name, node_path, key, f"fhirpathpy cannot parse it ({type(exc).__name__})"))
                continue
            table.setdefault(node_path, []).append((key, human, function, holds_without(key, expression)))
    return table, tuple(skipped_list)


_ENGINE_FAILURES: dict[tuple[str, str, str], SkippedInvariant] = {}


def _record_engine_failure(failure: SkippedInvariant) -> None:
    where = (failure.type_name, failure.path, failure.key)
    if where not in _ENGINE_FAILURES:
        _ENGINE_FAILURES[where] = failure
        _log.warning("FHIR invariant %s on %s.%s skipped: %s", failure.key, failure.type_name, failure.path, failure.reason)


def skipped() -> tuple[SkippedInvariant, ...]:
    """The invariants not evaluated, with the reason: those never evaluated (see the module
    docstring), then those fhirpathpy failed on at run time in this process (each also logged
    once, without data)."""
    never = tuple(item for type_name in definitions().constraints for item in _compiled(type_name)[1])
    return never + tuple(_ENGINE_FAILURES.values())


def invariant_problems(targets: list[InvariantTarget]) -> list[Problem]:
    """Evaluate the invariants of each target node (collected by the structural walk on a copy)."""
    problems: list[Problem] = []
    for target in targets:
        checks = _compiled(target.type_name)[0].get(target.node_path)
        if not checks:
            continue
        base = f"{target.type_name}.{target.node_path}" if target.node_path else target.type_name
        context = {**_ENVIRONMENT, "resource": target.resource, "rootResource": target.root}
        for key, human, function, holds_when_absent in checks:
            if holds_when_absent is not None and isinstance(target.node, dict) and not any(
                    name in target.node or f"_{name}" in target.node for name in holds_when_absent):
                continue
            if function is None:
                try:
                    holds = IN_PYTHON[key](target.node)
                except (ValueError, TypeError, KeyError, AttributeError) as exc:
                    _record_engine_failure(SkippedInvariant(target.type_name, target.node_path, key,
                                                            f"its Python check raised {type(exc).__name__}"))
                    continue
                if not holds:
                    problems.append(Problem(target.path, f"{key}: {human}"))
                continue
            node = ResourceNode.create_node(target.node, base)
            try:
                result = function(node, context)
            except Exception as exc:  # noqa: BLE001 - an engine failure is recorded and logged, not a verdict
                _record_engine_failure(SkippedInvariant(target.type_name, target.node_path, key,
                                                        f"fhirpathpy raised {type(exc).__name__} on a resource"))
                continue
            if result == [False]:
                problems.append(Problem(target.path, f"{key}: {human}"))
    return problems
