"""Run slither's detectors on the build-info project and list every external call the contracts make.

Slither runs in-process on the Hardhat-format project `build_info.write_build_info` wrote, with
`hardhat_ignore_compile` (slither's compile layer cannot drive solcjs) and `npx_disable` (so it never
starts `npx hardhat`, which would try to download Hardhat).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ehr_client.errors import ConfigError

PROJECT_PREFIX = "contracts/"
GATED_IMPACTS = frozenset({"High", "Medium"})


@dataclass(frozen=True)
class Finding:
    """One slither result, reduced to what triage matches on and what a reader needs."""

    detector: str
    impact: str
    confidence: str
    contract: str
    function: str
    path: str
    description: str

    @property
    def gated(self) -> bool:
        return self.impact in GATED_IMPACTS


@dataclass(frozen=True)
class ExternalCall:
    """A call from one of the project's contracts to another contract."""

    contract: str
    function: str
    caller_mutates_state: bool
    destination: str
    destination_immutable: bool
    callee: str
    callee_is_view: bool
    kind: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _load(project_dir: Path) -> Any:
    try:
        from slither import Slither
    except ImportError:
        raise ConfigError("slither-analyzer is not installed in this environment: `make install` "
                          "(requirements.lock pins slither-analyzer 0.11.6)") from None
    return Slither(str(project_dir), compile_force_framework="hardhat", hardhat_ignore_compile=True,
                   npx_disable=True)


def _location(element: dict[str, Any]) -> tuple[str, str]:
    """(contract, function signature) of a result element; function is "" for contract-level results."""
    fields = element.get("type_specific_fields", {})
    if element.get("type") == "function":
        return str(fields.get("parent", {}).get("name", "")), str(fields.get("signature", element.get("name", "")))
    if element.get("type") == "contract":
        return str(element.get("name", "")), ""
    parent = fields.get("parent", {})
    if parent.get("type") == "function":
        return _location(parent)
    if parent.get("type") == "contract":
        return str(parent.get("name", "")), ""
    return "", ""


def _finding(result: dict[str, Any]) -> Finding:
    elements = result.get("elements", [])
    first = elements[0] if elements else {}
    contract, function = _location(first)
    path = str(first.get("source_mapping", {}).get("filename_short", ""))
    return Finding(
        detector=str(result["check"]),
        impact=str(result["impact"]),
        confidence=str(result["confidence"]),
        contract=contract,
        function=function,
        path=path,
        description=str(result.get("description", "")).strip(),
    )


def run_detectors(project_dir: Path) -> tuple[list[Finding], int]:
    """Every detector's findings and the number of detectors run."""
    slither = _load(project_dir)
    from slither.detectors import all_detectors
    from slither.detectors.abstract_detector import AbstractDetector

    detectors = [
        d for d in vars(all_detectors).values()
        if isinstance(d, type) and issubclass(d, AbstractDetector) and d is not AbstractDetector
    ]
    for detector in detectors:
        slither.register_detector(detector)
    findings = [_finding(result) for batch in slither.run_detectors() for result in batch]
    findings.sort(key=lambda f: (f.impact, f.detector, f.path, f.contract, f.function, f.description))
    return findings, len(detectors)


def external_calls(project_dir: Path) -> list[ExternalCall]:
    """Every call from a function of a contract under contracts/ to another contract or address."""
    slither = _load(project_dir)
    from slither.core.declarations import Function
    from slither.core.variables.state_variable import StateVariable
    from slither.slithir.operations import HighLevelCall, LibraryCall, LowLevelCall, Send, Transfer

    calls: set[ExternalCall] = set()
    for contract in slither.contracts:
        if not contract.source_mapping.filename.short.startswith(PROJECT_PREFIX) or contract.is_interface:
            continue
        for function in contract.functions_and_modifiers:
            mutates = not (function.view or function.pure)
            for ir in function.all_slithir_operations():
                if isinstance(ir, LibraryCall):
                    continue
                if isinstance(ir, HighLevelCall):
                    destination = ir.destination
                    callee = ir.function
                    calls.add(ExternalCall(
                        contract=contract.name,
                        function=function.full_name,
                        caller_mutates_state=mutates,
                        destination=str(getattr(destination, "name", destination)),
                        destination_immutable=isinstance(destination, StateVariable) and destination.is_immutable,
                        callee=str(getattr(callee, "full_name", callee)),
                        callee_is_view=isinstance(callee, Function) and (callee.view or callee.pure),
                        kind="high-level",
                    ))
                elif isinstance(ir, (LowLevelCall, Send, Transfer)):
                    calls.add(ExternalCall(
                        contract=contract.name,
                        function=function.full_name,
                        caller_mutates_state=mutates,
                        destination=str(getattr(ir, "destination", "")),
                        destination_immutable=False,
                        callee=type(ir).__name__,
                        callee_is_view=False,
                        kind="low-level",
                    ))
    return sorted(calls, key=lambda c: (c.contract, c.function, c.destination, c.callee))
