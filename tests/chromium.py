"""Debian's chromium for every browser test: where it is, how it starts, one per module.

Never a downloaded browser: Playwright drives /usr/bin/chromium (``make test`` installs
the ``chromium`` package when it is missing), headless, with nothing that reaches a
network.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# The machine has no network: nothing may try to reach one, nor download a browser.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: For a browser test module: skipped where Debian's chromium is not installed.
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")


def launch_browser() -> Iterator[Any]:
    """One chromium, closed with its driver at the end (the body of a module fixture)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()
