"""Fixtures for the portal: the CLI's world (its own Anvil, deployment, members, local store),
`ehr portal` as a real process on a free loopback port with a relayer, headless Debian Chromium
driven by Playwright, and a test wallet injected as `window.ethereum`.

The page is the one `make portal` built (.build/portal, or $EHR_PORTAL_DIR); a build older than
portal/ fails the session, so the tests never run yesterday's page.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ehr_client.portal import default_static_dir
from tests.cli.conftest import CAST, Cli, anvil, cli, cli_env, dev_key, home, import_wallets, world  # noqa: F401
from tests.portal.wallet import INIT_SCRIPT, TestWallet

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "portal"
BROWSER_PATIENT_INDEX = len(CAST)  # the first funded dev account the CLI world does not use
RELAYER = "hospital"


def built_page() -> Path:
    page = default_static_dir()
    app_js = page / "app.js"
    if not app_js.is_file() or not (page / "index.html").is_file():
        pytest.fail(f"the portal page is not built in {page}: run `make portal`")
    if "EHR_PORTAL_DIR" not in os.environ:
        sources = [*(REPO / "portal" / "src").glob("*.js"), REPO / "portal" / "index.html", REPO / "portal" / "style.css"]
        newest = max(path.stat().st_mtime for path in sources)
        if app_js.stat().st_mtime < newest:
            pytest.fail(f"the portal page in {page} is older than portal/: run `make portal`")
    return page


@dataclass
class Portal:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.url + path, timeout=60, **kwargs)


def start_portal(home_dir: Path, env: dict[str, str], work: Path, *extra: str, wallet: str | None = None) -> Portal:
    """`ehr portal` in its own process group; returns once its ready file names the URL."""
    ready = work / "ready.json"
    log = work / "portal.log"
    argv = [sys.executable, "-m", "ehr_client.cli", *(["--wallet", wallet] if wallet else []), "portal",
            "--port", "0", "--ready-file", str(ready), *extra]
    full_env = {**os.environ, **env, "EHR_PORTAL_DIR": str(built_page()), "PYTHONPATH": str(REPO)}
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while not ready.is_file():
        if process.poll() is not None:
            pytest.fail(f"ehr portal exited {process.returncode}: {log.read_text()}")
        if time.monotonic() > deadline:
            stop_portal(process)
            pytest.fail(f"ehr portal did not start within 60 s: {log.read_text()}")
        time.sleep(0.1)
    return Portal(json.loads(ready.read_text())["url"], process, log)


def stop_portal(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="session")
def portal(world: dict[str, str], home: Path, anvil: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """The portal for the CLI world's deployment, relaying with the hospital's wallet."""
    running = start_portal(home, cli_env(home, anvil.rpc_url), tmp_path_factory.mktemp("portal"), "--relayer",
                           wallet=RELAYER)
    try:
        yield running
    finally:
        stop_portal(running.process)


@pytest.fixture(scope="session")
def browser(chromium: Any) -> Any:
    return chromium  # the session's one Chromium (tests/chromium.py)


@pytest.fixture(scope="session")
def patient_wallet(anvil: Any) -> TestWallet:
    """The browser patient's wallet: a funded dev account no CLI wallet uses."""
    return TestWallet(dev_key(BROWSER_PATIENT_INDEX), anvil.rpc_url)


def open_page(browser: Any, wallet: TestWallet | None, console: list[str]) -> Any:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    page.on("dialog", lambda dialog: dialog.accept())
    if wallet is not None:
        page.expose_function("__ehrTestWallet", wallet.handle)
        page.add_init_script(INIT_SCRIPT)
    return page


@pytest.fixture
def console() -> list[str]:
    return []


@pytest.fixture
def page(browser: Any, patient_wallet: TestWallet, console: list[str]) -> Iterator[Any]:
    opened = open_page(browser, patient_wallet, console)
    try:
        yield opened
    finally:
        opened.context.close()


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
