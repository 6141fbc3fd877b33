"""format.js in a real browser: esbuild bundles it, a loopback server serves it (WebCrypto needs a
secure context), Debian's Chromium runs it under Playwright. It must give Node's answers for every
vector, and what it writes must open in ehr_client."""

from __future__ import annotations

import functools
import hashlib
import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from ehr_client.crypto import unwrap_data_key
from ehr_client.keyshare import KeyShare
from tests.portal_format.node import ROOT, all_cases, generator, ops_for, run_node

ESBUILD = ROOT / "node_modules" / ".bin" / "esbuild"
gen = generator()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (the base class's name)
        pass


@pytest.fixture(scope="module")
def page(chromium: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    site = tmp_path_factory.mktemp("format-site")
    subprocess.run([str(ESBUILD), str(ROOT / "tests" / "portal_format" / "browser.mjs"), "--bundle", "--format=esm",
                    "--platform=browser", f"--outfile={site / 'format-tests.js'}", "--log-level=warning"],
                   check=True, cwd=ROOT, timeout=120)
    (site / "index.html").write_text('<!doctype html><meta charset="utf-8"><title>loading</title>'
                                     '<script type="module" src="format-tests.js"></script>\n')
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        tab = chromium.new_page()  # the session's one Chromium (tests/chromium.py)
        try:
            tab.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
            tab.wait_for_function("document.title === 'format tests ready'", timeout=60_000)
            yield tab
        finally:
            tab.close()
    finally:
        server.shutdown()
        server.server_close()


def run_browser(page: Page, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = page.evaluate("ops => runOps(ops)", ops)
    return results


def test_chromium_gives_node_answers_for_every_vector(page: Page) -> None:
    assert page.evaluate("isSecureContext && !!crypto.subtle")
    ops = [op for kind, _, negative, case in all_cases() for op in ops_for(kind, case, negative)]
    in_browser = run_browser(page, ops)
    in_node = run_node(ops)
    assert in_browser == in_node  # test_js_reads_python_vectors checks the Node answers against the vectors
    assert sum(not r["ok"] for r in in_browser) >= 60 and sum(r["ok"] for r in in_browser) >= 20


@pytest.fixture
def binding() -> Any:
    return gen.binding_of("chromium", 2, "patient", gen.LAB_SCOPE, "lab")


def test_python_reads_wraps_packages_and_shares_made_in_chromium(page: Page, binding: Any) -> None:
    data_key = hashlib.sha256(b"chromium").digest()
    plaintext = b'{"resourceType":"Observation","status":"final","code":{"text":"made in Chromium"}}'
    b = dict(gen.binding_json(binding))
    wrap, package, share = run_browser(page, [
        {"op": "wrap", "data_key": data_key.hex(), "public": gen.pub("doctor").hex(),
         "associated_data": binding.associated_data.hex()},
        {"op": "build_package", "binding": b, "data_key": data_key.hex(), "media_type": "application/fhir+json",
         "readers": [{"address": gen.ADDRESS["patient"], "key_version": 1, "public": gen.pub("patient").hex()}],
         "umbral": None, "plaintext": plaintext.hex(), "chunk_size": 64},
        {"op": "make_keyshare", "patient": gen.ADDRESS["patient"], "grantee": gen.ADDRESS["doctor"],
         "public": gen.pub("doctor").hex(), "key_version": 1, "entries": [{"binding": b, "data_key": data_key.hex()}]},
    ])
    assert wrap["ok"] and package["ok"] and share["ok"], (wrap, package, share)
    assert unwrap_data_key(bytes.fromhex(wrap["wrapped"]), gen.X25519["doctor"],
                           associated_data=binding.associated_data) == data_key
    assert gen.python_open(bytes.fromhex(package["package"]), "patient", {1: gen.X25519["patient"]}, binding) == plaintext
    parsed = KeyShare.from_bytes(share["share"].encode())
    assert parsed.to_bytes() == share["share"].encode()
    assert unwrap_data_key(parsed.entries[0].wrapped, gen.X25519["doctor"],
                           associated_data=binding.associated_data) == data_key
