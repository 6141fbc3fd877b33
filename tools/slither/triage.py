"""The accepted-findings list (`tools/slither/triage.json`) and matching findings against it.

An entry accepts every finding of one detector in one function (`contract` + full `function`
signature as slither prints it; "" for contract-level results) and must say why. Only medium and
high findings are gated; an entry that matches no current finding is stale and fails the check
too, so the file never accepts more than what it was written for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from analyze import Finding

from ehr_client.errors import ConfigError

TRIAGE_FILE = Path(__file__).resolve().with_name("triage.json")
MIN_JUSTIFICATION = 40


@dataclass(frozen=True)
class Accepted:
    detector: str
    contract: str
    function: str
    justification: str

    def matches(self, finding: Finding) -> bool:
        return (finding.detector, finding.contract, finding.function) == (self.detector, self.contract, self.function)


@dataclass(frozen=True)
class TriageResult:
    triaged: list[tuple[Finding, Accepted]]
    untriaged: list[Finding]
    stale: list[Accepted]


def load_triage(path: Path = TRIAGE_FILE) -> list[Accepted]:
    try:
        doc = json.loads(path.read_text())
        entries = [
            Accepted(str(e["detector"]), str(e["contract"]), str(e["function"]), str(e["justification"]).strip())
            for e in doc["accepted"]
        ]
    except FileNotFoundError:
        raise ConfigError(f"no triage file at {path}; create it with an empty \"accepted\" list") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not a valid triage file ({exc}); see 'Static analysis' in SECURITY.md") from None
    for entry in entries:
        if len(entry.justification) < MIN_JUSTIFICATION:
            raise ConfigError(f"{path}: the entry for {entry.detector} in {entry.contract}.{entry.function} "
                              "needs a real justification")
    return entries


def triage(findings: list[Finding], accepted: list[Accepted]) -> TriageResult:
    """Split the gated findings into triaged and untriaged, and find entries nothing matched."""
    triaged: list[tuple[Finding, Accepted]] = []
    untriaged: list[Finding] = []
    used: set[Accepted] = set()
    for finding in findings:
        if not finding.gated:
            continue
        entry = next((a for a in accepted if a.matches(finding)), None)
        if entry is None:
            untriaged.append(finding)
        else:
            triaged.append((finding, entry))
            used.add(entry)
    return TriageResult(triaged, untriaged, [a for a in accepted if a not in used])
