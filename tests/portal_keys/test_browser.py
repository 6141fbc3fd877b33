"""keys.js and umbral.js bundled by the pinned esbuild for the browser and run in Debian's
Chromium, served from 127.0.0.1 under a strict Content-Security-Policy: the same keys as Python,
the Umbral WASM loads from the page's own origin, and a policy without 'wasm-unsafe-eval' stops it
with an UmbralError (the portal's CSP must allow it)."""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import umbral_pre
from eth_account import Account

from ehr_client.keys.derive import derive_from_account
from tests.portal_keys.conftest import REPO

WASM = REPO / "node_modules" / "@nucypher" / "umbral-pre" / "pkg-bundler" / "umbral_pre_wasm_bg.wasm"
STRICT = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; object-src 'none'; base-uri 'none'"
NO_WASM = "default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'"
ENTRY = """import * as keys from "{src}/keys.js";
import * as umbral from "{src}/umbral.js";
window.ehr = {{ keys, umbral }};
document.body.dataset.ready = "yes";
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle (esbuild from node_modules, as `make portal` pins it), the .wasm and a page."""
    root = tmp_path_factory.mktemp("site")
    entry = root / "entry.js"
    entry.write_text(ENTRY.format(src=(REPO / "portal" / "src").as_posix()))
    esbuild = REPO / "node_modules" / ".bin" / "esbuild"
    done = subprocess.run([str(esbuild), str(entry), "--bundle", "--format=esm", "--platform=browser",
                           f"--outfile={root / 'bundle.js'}", "--log-level=warning"],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    shutil.copy(WASM, root / "umbral.wasm")
    (root / "index.html").write_text('<!doctype html><html><head><meta charset="utf-8">'
                                     '<script type="module" src="bundle.js"></script></head><body></body></html>')
    return root


def _serve(root: Path, csp: str) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".wasm": "application/wasm",
                          ".js": "text/javascript"}

        def end_headers(self) -> None:
            self.send_header("Content-Security-Policy", csp)
            super().end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


@pytest.fixture(scope="module")
def browser(chromium: Any) -> Any:
    return chromium  # the session's one Chromium (tests/chromium.py)


def _page(browser: Any, site: Path, csp: str) -> Iterator[Any]:
    server, url = _serve(site, csp)
    page = browser.new_page()
    try:
        page.goto(url)
        page.wait_for_selector("body[data-ready=yes]", state="attached")
        yield page
    finally:
        page.close()
        server.shutdown()
        server.server_close()


def test_chromium_derives_python_s_keys_and_runs_umbral_from_its_own_origin(browser: Any, site: Path) -> None:
    account = Account.from_key("0x" + "11" * 32)
    expected = derive_from_account(account, chain_id=31337, verifying_contract="0x" + "22" * 20)
    for page in _page(browser, site, STRICT):
        result = page.evaluate("""async ([account]) => {
            const { keys, umbral } = window.ehr;
            const typed = keys.derivationTypedData({ chainId: 31337, verifyingContract: "0x" + "22".repeat(20), account });
            const sig = "0x90bfea833f0c3af42b18b2d891b4357da3b85bb8c53413be5acbabdd69e10d9c696562ad65fa438de3a6da0f7a2ed23a97950483505f8f63e3f117d8650a5c691b";
            const derived = await keys.deriveKeys(sig);
            await umbral.initUmbral("/umbral.wasm");
            const sealed = umbral.encrypt(derived.umbralPublic, new Uint8Array([7, 8, 9]));
            return {
                signer: keys.recoverSigner(typed, sig),
                x25519Public: keys.bytesToHex(derived.x25519Public),
                umbralPublic: keys.bytesToHex(umbral.publicKeyOf(derived.umbralSecret)),
                capsule: keys.bytesToHex(sealed.capsule), ciphertext: keys.bytesToHex(sealed.ciphertext),
                secureContext: window.isSecureContext,
            };
        }""", [account.address])
    assert result["signer"] == account.address and result["secureContext"] is True
    assert result["x25519Public"] == "0x" + expected.x25519_public.hex()
    assert result["umbralPublic"] == "0x" + expected.umbral_public.hex()
    # what the browser sealed to the wallet-derived Umbral key, Python opens with the same derived secret
    capsule = umbral_pre.Capsule.from_bytes(bytes.fromhex(result["capsule"][2:]))
    opened = umbral_pre.decrypt_original(umbral_pre.SecretKey.from_be_bytes(expected.umbral_secret), capsule,
                                         bytes.fromhex(result["ciphertext"][2:]))
    assert opened == bytes([7, 8, 9])


def test_a_policy_without_wasm_unsafe_eval_stops_umbral_with_an_umbral_error(browser: Any, site: Path) -> None:
    for page in _page(browser, site, NO_WASM):
        result = page.evaluate("""async () => {
            const { umbral } = window.ehr;
            try { await umbral.initUmbral("/umbral.wasm"); return "loaded"; }
            catch (error) { return error.name + ": " + error.message; }
        }""")
    assert result.startswith("UmbralError") and "Content Security" in result and "wasm-unsafe-eval" in result
