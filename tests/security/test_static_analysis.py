"""Static analysis gate (slither) and the proof that no contract can be re-entered.

Slither runs through tools/slither/run.py (offline: a Hardhat-format build-info written from
solcjs's standard-JSON output; inside a network namespace when one can be created). The gate fails
on any medium or high finding not accepted in tools/slither/triage.json, and on triage entries
that no longer match anything.

Reentrancy: the deployed runtime code of all four contracts contains no CALL, CALLCODE,
DELEGATECALL, CREATE, CREATE2 or SELFDESTRUCT; their only external calls are STATICCALLs, which
cannot change state, so no callee can call back into a state-changing function. Slither's view
agrees: every external call goes to an immutable suite contract (set at construction) and is to a
view function. No function takes an address it then calls, so no malicious-contract test applies.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNNER = REPO / "tools" / "slither" / "run.py"
SUITE_CONTRACTS = {"_consortium", "_records", "_consent"}
FORBIDDEN_OPCODES = {0xF0: "CREATE", 0xF1: "CALL", 0xF2: "CALLCODE", 0xF4: "DELEGATECALL", 0xF5: "CREATE2",
                     0xFF: "SELFDESTRUCT"}
STATICCALL = 0xFA


@pytest.fixture(scope="module")
def slither_summary(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    summary = tmp_path_factory.mktemp("slither") / "summary.json"
    result = subprocess.run([sys.executable, str(RUNNER), "--summary", str(summary)], capture_output=True, text=True,
                            timeout=600, cwd=REPO, check=False)
    print(result.stdout)
    if result.returncode == 2 or not summary.exists():
        pytest.fail(f"the slither gate could not run:\n{result.stdout}\n{result.stderr[-3000:]}")
    data: dict[str, Any] = json.loads(summary.read_text())
    data["returncode"] = result.returncode
    data["stdout"] = result.stdout
    return data


def test_slither_leaves_no_untriaged_medium_or_high_finding(slither_summary: dict[str, Any]) -> None:
    assert slither_summary["detectors"] >= 90, "slither ran far fewer detectors than expected"
    assert not slither_summary["untriaged"], "untriaged findings:\n" + slither_summary["stdout"]
    assert not slither_summary["stale"], "triage entries that match nothing:\n" + slither_summary["stdout"]
    assert slither_summary["returncode"] == 0


def test_slither_sees_no_reentrancy_and_only_view_calls_to_immutable_suite_contracts(
    slither_summary: dict[str, Any],
) -> None:
    assert not [k for k in slither_summary["by_detector"] if "reentrancy" in k]
    calls = slither_summary["external_calls"]
    assert calls, "slither found no external calls at all; the analysis did not see the contracts"
    for call in calls:
        where = f"{call['contract']}.{call['function']} -> {call['destination']}.{call['callee']}"
        assert call["kind"] == "high-level", f"low-level call: {where}"
        assert call["destination"] in SUITE_CONTRACTS and call["destination_immutable"], where
        assert call["callee_is_view"], f"call to a state-changing function: {where}"


def _opcodes(code: bytes) -> list[int]:
    """Opcodes of runtime code, skipping PUSH data and the trailing CBOR metadata."""
    body = code[: len(code) - int.from_bytes(code[-2:], "big") - 2] if len(code) > 2 else code
    ops, i = [], 0
    while i < len(body):
        op = body[i]
        ops.append(op)
        i += 1 + (op - 0x5F if 0x60 <= op <= 0x7F else 0)
    return ops


def test_deployed_code_makes_no_state_changing_external_call(network: dict[str, Any], chain: Any) -> None:
    for name, contract in network.items():
        code = bytes(chain.provider.get_code(contract.address))
        ops = _opcodes(code)
        found = sorted({FORBIDDEN_OPCODES[op] for op in ops if op in FORBIDDEN_OPCODES})
        assert not found, f"{name} runtime code contains {found}"
        if name in ("consent", "records"):
            assert STATICCALL in ops, f"{name} should reach the other contracts by STATICCALL only"


def test_slither_gate_fails_on_an_untriaged_finding_and_on_a_stale_entry(tmp_path: Path) -> None:
    accepted = json.loads((REPO / "tools" / "slither" / "triage.json").read_text())["accepted"]
    dropped = next(e for e in accepted if e["contract"] == "KeyRegistry")
    stale = {"detector": "reentrancy-eth", "contract": "RecordRegistry", "function": "addRecord()",
             "justification": "an entry that matches nothing must fail the gate rather than hide"}
    triage = tmp_path / "triage.json"
    triage.write_text(json.dumps({"accepted": [e for e in accepted if e is not dropped] + [stale]}))
    result = subprocess.run([sys.executable, str(RUNNER), "--triage", str(triage), "--summary",
                             str(tmp_path / "summary.json")], capture_output=True, text=True, timeout=600, cwd=REPO,
                            check=False)
    assert result.returncode == 1, result.stdout + result.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [(f["detector"], f["contract"]) for f in summary["untriaged"]] == [("incorrect-equality", "KeyRegistry")]
    assert [s["function"] for s in summary["stale"]] == ["addRecord()"]
    assert "UNTRIAGED" in result.stdout and "STALE" in result.stdout
