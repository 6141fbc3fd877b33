"""Contract invariants fuzzed with Forge (issue 12): at least 100,000 calls for every invariant.

Forge (npm `@foundry-rs/forge-linux-amd64`, installed by `make install`) runs the suite in
contracts-test/ with the seed, runs and depth fixed in foundry.toml. Its handler drives the real
Consortium, RecordRegistry and ConsentManager as patients, authorised authors, members without
grants and an outsider; each `invariant_*` is fuzzed in a campaign of its own (256 runs of 400
calls). The same run executes InvariantTeethTest, which shows every check failing on an injected
fault, and HandlerReachTest, which shows the handler reaches reads, emergency reads, batches,
amendments, tombstones, signed grants, revocations, break-glass, suspensions, and signed
revocations that end a grant signed at or before their nonce but relayed after them (issue 13).

Forge compiles through the project's solcjs shim and never touches the network; when the process
may create a network namespace (`unshare -n`, as root) it runs inside one, which proves it.
`make fuzz` runs the same thing with forge's own report.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
FORGE_CANDIDATES = (
    REPO / "node_modules" / ".bin" / "forge",
    REPO / "node_modules" / "@foundry-rs" / "forge-linux-amd64" / "bin" / "forge",
)
SOLC_SHIM = REPO / ".build" / "solcx" / "solc-v0.8.28"
MIN_CALLS = 100_000
INVARIANTS = {
    "invariant_noReadWithoutCoveringGrant()",
    "invariant_revokedOrExpiredGrantNeverReads()",
    "invariant_accessEventsNameThePatient()",
    "invariant_recordIdentityNeverChanges()",
    "invariant_onlyPatientTombstones()",
    "invariant_idsNeverReused()",
    "invariant_writesNeedAnAmendGrant()",
}
TEETH = {
    "test_readWithoutGrantIsCaught()",
    "test_readOnRevokedGrantIsCaught()",
    "test_readOnExpiredGrantIsCaught()",
    "test_accessEventNamingAnotherPatientIsCaught()",
    "test_changedScopeIsCaught()",
    "test_tombstoneByNonPatientIsCaught()",
    "test_reusedIdIsCaught()",
    "test_batchWithoutAmendGrantIsCaught()",
    "test_signedRevocationVoidedByEarlierGrantIsCaught()",
    "test_signedRevocationRefusedAfterEarlierGrantIsCaught()",
}

pytestmark = pytest.mark.slow


def _forge() -> Path:
    for candidate in FORGE_CANDIDATES:
        if candidate.exists():
            return candidate
    pytest.fail("forge is not installed: run `make install` (npm ci installs @foundry-rs/forge-linux-amd64)")


def _isolated() -> list[str]:
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True, check=False).returncode == 0:
        return [unshare, "-n"]
    return []


@pytest.fixture(scope="module")
def forge_run() -> dict[str, Any]:
    forge = _forge()
    if not SOLC_SHIM.exists():
        pytest.fail(f"{SOLC_SHIM.relative_to(REPO)} is missing: run `make install`")
    command = [*_isolated(), str(forge), "test", "--json", "-vv"]  # -vv: console logs in the report
    started = time.monotonic()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    elapsed = time.monotonic() - started
    try:
        suites: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"forge exited {result.returncode} without a JSON report:\n"
                    f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    tests = {name: outcome for suite in suites.values() for name, outcome in suite["test_results"].items()}
    calls = sum(t["kind"]["Invariant"]["calls"] for t in tests.values() if "Invariant" in t["kind"])
    print(f"forge: {len(tests)} tests, {calls} invariant calls in {elapsed:.1f} s "
          f"({'isolated from the network' if command[0] != str(forge) else 'not isolated'})")
    return {"returncode": result.returncode, "stderr": result.stderr, "tests": tests}


def _failures(run: dict[str, Any]) -> str:
    lines = []
    for name, outcome in run["tests"].items():
        if outcome["status"] != "Success":
            lines.append(f"{name}: {outcome['status']}: {outcome['reason']}\n"
                         f"  counterexample: {json.dumps(outcome['counterexample'])[:3000]}")
    return "\n".join(lines) + "\n" + run["stderr"][-3000:]


def test_forge_run_passes(forge_run: dict[str, Any]) -> None:
    assert forge_run["returncode"] == 0, _failures(forge_run)


def test_every_invariant_held_for_at_least_100000_calls(forge_run: dict[str, Any]) -> None:
    tests = forge_run["tests"]
    missing = INVARIANTS - tests.keys()
    assert not missing, f"invariants forge did not run: {sorted(missing)}"
    for name in sorted(INVARIANTS):
        outcome = tests[name]
        assert outcome["status"] == "Success", _failures(forge_run)
        campaign = outcome["kind"]["Invariant"]
        assert campaign["calls"] >= MIN_CALLS, f"{name} ran only {campaign['calls']} calls"
        # The handler catches every refusal it provokes; a revert escaping it is a broken test.
        assert campaign["reverts"] == 0, f"{name}: {campaign['reverts']} handler calls reverted"
        called = {selector.rsplit(".", 1)[-1] for selector in campaign["metrics"]}
        assert {"requestAccess", "anchorBatch", "grantBySig", "tombstone", "forgeBatched", "relayHeld"} <= called, called


def test_each_check_fails_on_an_injected_fault_and_the_handler_reaches_every_path(
    forge_run: dict[str, Any],
) -> None:
    tests = forge_run["tests"]
    expected = TEETH | {"test_handlerReachesEveryPath()"}
    missing = expected - tests.keys()
    assert not missing, f"tests forge did not run: {sorted(missing)}"
    failed = {name: tests[name]["reason"] for name in expected if tests[name]["status"] != "Success"}
    assert not failed, failed
    print("handler reach over 8 runs of 400 calls:", ", ".join(tests["test_handlerReachesEveryPath()"]["decoded_logs"]))


# A planted bug for the fuzzer to find: the read path checks only that some grant exists,
# ignoring its scopes and expiry (canRead stays correct, so only the reads themselves are wrong).
MUTATION = (
    "if (member && _grantCovers(_grants[patient][msg.sender], scope, Access.Read)) {",
    "if (member && _grants[patient][msg.sender].access != Access.None) {",
)


def test_fuzzer_finds_a_planted_bug_in_a_mutated_consent_manager(tmp_path: Path) -> None:
    """The same handler and invariant, fuzzed against a copy of the contracts with the read path's
    grant check weakened, must fail, and say why; otherwise the fuzzing above proves nothing."""
    forge = _forge()
    source = (REPO / "contracts" / "ConsentManager.sol").read_text()
    assert source.count(MUTATION[0]) == 1, "ConsentManager's read check changed: update MUTATION"
    shutil.copytree(REPO / "contracts", tmp_path / "contracts")
    shutil.copytree(REPO / "contracts-test", tmp_path / "contracts-test")
    (tmp_path / "contracts" / "ConsentManager.sol").write_text(source.replace(*MUTATION))
    (tmp_path / "node_modules").symlink_to(REPO / "node_modules")
    config = (REPO / "foundry.toml").read_text().replace('".build/solcx/', f'"{REPO}/.build/solcx/')
    (tmp_path / "foundry.toml").write_text(config)
    command = [*_isolated(), str(forge), "test", "--json", "--match-test", "invariant_noReadWithoutCoveringGrant"]
    env = {**os.environ, "FOUNDRY_INVARIANT_RUNS": "64", "FOUNDRY_INVARIANT_DEPTH": "200",
           "FOUNDRY_INVARIANT_SHRINK_RUN_LIMIT": "0"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode != 0, "forge passed against a consent manager that ignores scopes and expiry"
    report = json.loads(result.stdout)
    outcome = next(iter(report.values()))["test_results"]["invariant_noReadWithoutCoveringGrant()"]
    assert outcome["status"] == "Failure"
    print(f"planted bug found: {outcome['reason']} ({outcome['kind']['Invariant']['calls']} calls)")
    # Out-of-scope reads fail the count check; reads on expired grants, the per-read basis check.
    assert outcome["reason"].startswith(("read without a covering grant", "a recorded read had no basis")), \
        outcome["reason"]
