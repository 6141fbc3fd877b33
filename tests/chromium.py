"""One headless Chromium for the whole test session (Debian's, at /usr/bin/chromium; `make browser`).

Playwright's sync API runs one event loop per thread: a second `sync_playwright()` while another is
open fails ("using Playwright Sync API inside the asyncio loop"), so every browser test shares this one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: run `make browser` (installs Debian's chromium)")
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only browser tests need Playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()
