"""(a) format.js opens every vector ehr_client made and refuses every negative vector with the right error.

One Node process runs all vectors (module fixture); each vector is its own test so a failure names it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.portal_format.node import FILES, all_cases, load_vectors, ops_for, run_node

CASES = all_cases()
IDS = [f"{kind}{'-refused' if negative else ''}: {name}" for kind, name, negative, _ in CASES]


@pytest.fixture(scope="module")
def js_results() -> dict[str, list[dict[str, Any]]]:
    plan = [(test_id, ops_for(kind, case, negative)) for test_id, (kind, _, negative, case) in zip(IDS, CASES, strict=True)]
    flat = [op for _, ops in plan for op in ops]
    results = run_node(flat)
    out, at = {}, 0
    for test_id, ops in plan:
        out[test_id] = results[at : at + len(ops)]
        at += len(ops)
    return out


def test_every_vector_file_has_good_and_refused_cases() -> None:
    for kind in FILES:
        vectors = load_vectors(kind)
        assert vectors["cases"] and vectors["negative"], kind
        assert len({c["name"] for c in vectors["negative"]}) == len(vectors["negative"])


@pytest.mark.parametrize("case_id", IDS)
def test_js_matches_python_vector(case_id: str, js_results: dict[str, list[dict[str, Any]]]) -> None:
    kind, _, negative, case = CASES[IDS.index(case_id)]
    results = js_results[case_id]
    if negative:
        result = results[0]
        assert result["ok"] is False, f"format.js accepted a vector ehr_client refuses: {result}"
        assert result["error"] == case["error"]["js"], result
        assert result["message"] and "plaintext" not in result and "data_key" not in result
        return
    assert all(r["ok"] for r in results), results
    if kind == "wrap":
        unwrapped, public, ad = results
        assert unwrapped["data_key"] == case["data_key"]
        assert public["public"] == case["recipient_public"]
        assert ad["associated_data"] == case["associated_data"]
    elif kind == "envelope":
        opened, ad = results
        assert opened["plaintext"] == case["plaintext"] and opened["chunk_size"] == case["chunk_size"]
        assert ad["associated_data"] == case["associated_data"]
    elif kind == "package":
        parsed, opened = results
        assert parsed["format"] == case["format"] and parsed["media_type"] == case["media_type"]
        assert parsed["version"] == case["version"]
        chain = {k: v for k, v in case["expected"].items() if k != "content_hash"}
        assert parsed["binding"] == {**chain, "version": case["version"]}
        assert (parsed["umbral"] is not None) == ("umbral" in case)
        assert parsed["header_length"] + parsed["envelope_length"] == len(case["package"]) // 2
        assert opened["plaintext"] == case["plaintext"] and opened["data_key"] == case["data_key"]
        assert opened["media_type"] == case["media_type"]
    elif kind == "seal":
        assert results[0]["payload"] == case["payload"]
    else:
        parsed, *keys = results
        assert {k: parsed[k] for k in ("patient", "grantee", "entries")} == case["parsed"]
        assert [k["data_key"] for k in keys] == case["data_keys"]
