"""`python -m bench.fhir`: median time to validate a ~1 KB Observation, three ways, in one run.

- ``r4_structure_bindings``: ``validate_fhir(obs, invariants=False)``, the whole call (parse,
  structure, cardinality, formats, required bindings, canonical bytes); target <= 2 ms median;
- ``r4_with_invariants``: the same plus the FHIRPath invariants (fhirpathpy), reported alone;
- ``fhir_resources_r4b``: the old gate, ``fhir.resources`` 8.3's R4B ``Observation.model_validate``
  on the same dict, as the baseline of this run.

The three are interleaved round by round (so load changes hit them alike), after a warm-up that
also loads the definitions once. No chain is needed. Writes ``bench/results/fhir.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

from fhir.resources.R4B.observation import Observation as R4BObservation

from bench._records import observation, record_size
from bench.report import Target, write_json
from ehr_client.records import validate_fhir
from ehr_client.records.fhir_r4.definitions import definitions
from ehr_client.records.fhir_r4.invariants import skipped

RESULTS = Path(__file__).resolve().parent / "results" / "fhir.json"
TARGET_MS = 2.0


def _median_ms(function: Callable[[], object], samples: list[float]) -> None:
    began = time.perf_counter()
    function()
    samples.append((time.perf_counter() - began) * 1000)


def measure(rounds: int) -> dict[str, Any]:
    resource = observation(7)
    load_began = time.perf_counter()
    definitions()
    load_ms = (time.perf_counter() - load_began) * 1000
    cases: dict[str, Callable[[], object]] = {
        "r4_structure_bindings": lambda: validate_fhir(resource, invariants=False),
        "r4_with_invariants": lambda: validate_fhir(resource, invariants=True),
        "fhir_resources_r4b": lambda: R4BObservation.model_validate(resource),
    }
    for function in cases.values():  # warm-up: compiles the invariants, fills caches
        for _ in range(20):
            function()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, function in cases.items():
            _median_ms(function, samples[name])
    medians = {name: round(statistics.median(values), 4) for name, values in samples.items()}
    p95 = {name: round(sorted(values)[int(0.95 * (len(values) - 1))], 4) for name, values in samples.items()}
    return {
        "median_ms": medians,
        "p95_ms": p95,
        "ratio_structure_vs_r4b": round(medians["r4_structure_bindings"] / medians["fhir_resources_r4b"], 2),
        "ratio_invariants_vs_structure": round(medians["r4_with_invariants"] / medians["r4_structure_bindings"], 2),
        "definitions_load_ms": round(load_ms, 1),
        "invariants_skipped": len(skipped()),
        "rounds": rounds,
        "record_bytes": record_size(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fhir", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=2000, help="timed calls of each kind (2000)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    results = measure(args.rounds)
    check = Target("fhir.r4_structure_bindings_median_ms", results["median_ms"]["r4_structure_bindings"], TARGET_MS,
                   True, f"{TARGET_MS} ms")
    results["targets"] = [check.to_json()]
    results["context"] = {
        "cpu_cores": os.cpu_count(), "python": platform.python_version(),
        "packages": {name: version(name) for name in ("fhir.resources", "fhirpathpy")},
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load_average": os.getloadavg(),
    }
    write_json(args.out, results)
    print(f"FHIR validation of a {results['record_bytes']}-byte Observation, median of {args.rounds} (p95)")
    for name, median in results["median_ms"].items():
        print(f"  {name:24} {median:8.3f} ms  ({results['p95_ms'][name]:.3f})")
    print(f"  structure+bindings / R4B models: {results['ratio_structure_vs_r4b']}x; "
          f"with invariants / without: {results['ratio_invariants_vs_structure']}x")
    print(f"  target structure+bindings <= {TARGET_MS} ms: {'PASS' if check.passed else 'MISS'}")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
