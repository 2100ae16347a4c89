"""A real JupyterLab and Debian's Chromium driven by Playwright, for the UI tests.

`playwright install` is never used: Playwright drives `/usr/bin/chromium` (`executable_path`),
which `make test` installs as root when it is missing, as it does bubblewrap. Chromium runs
headless with the flags this closed network needs (no background networking, no component
updates) and a fresh profile per browser.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

CHROMIUM = os.environ.get("DIRENG_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def chromium_required() -> bool:
    """Must the browser tests run? Yes in CI (`CI=true`) and with `DIRENG_REQUIRE_BROWSER=1`."""
    return os.environ.get("CI") == "true" or os.environ.get("DIRENG_REQUIRE_BROWSER") == "1"


def require_chromium() -> str:
    """The Chromium executable; a failure where the browser is required, a skip elsewhere."""
    exe = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if not exe:
        message = f"no chromium at {CHROMIUM} (make test installs Debian's chromium as root)"
        if chromium_required():
            pytest.fail(message + " (required: CI=true or DIRENG_REQUIRE_BROWSER=1)", pytrace=False)
        pytest.skip(message)
    return exe


@contextmanager
def chromium_browser() -> Iterator:
    """One headless Chromium for a test module (Playwright's sync API allows one per thread)."""
    from playwright.sync_api import sync_playwright

    exe = require_chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def browser_page(browser, viewport=(1400, 900)) -> Iterator:
    """A page in a fresh context (its own cookies and storage) of `browser`."""
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        yield page
    finally:
        context.close()
