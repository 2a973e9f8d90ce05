"""
Fixtures of the real-browser tests: one headless Debian chromium per session, driven by
Playwright's async API, and a fresh browser context per test against a live daphne.

The async API runs on pytest-asyncio's session loop: the sync API marks its own loop as
running between calls, and Django then refuses ORM calls in the test ("async context").
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from django.db import connections
from playwright.async_api import Browser, Page, async_playwright

from tests.support.processes import ROOT, DaphneServer

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = ROOT / "artifacts" / "e2e"


def require_chromium() -> None:
    """Fails the test (never skips it) when no chromium executable is installed."""
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"No chromium at {CHROMIUM}: the browser tests need Debian's chromium "
            "(apt-get install chromium) or CHROMIUM=/path/to/chromium. "
            "Playwright's own browser download is not used."
        )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Returns Debian's chromium, launched headless once per session; fails if it is absent."""
    require_chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser, daphne: DaphneServer, request) -> AsyncIterator[Page]:
    """Returns a page of a fresh context on the live server; saves a screenshot at the end."""
    context = await browser.new_context(
        base_url=daphne.http_url, viewport={"width": 1280, "height": 800}
    )
    context.set_default_timeout(15_000)
    opened = await context.new_page()
    yield opened
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await opened.screenshot(path=ARTIFACTS / f"{request.node.name}.png", full_page=True)
    await context.close()


@pytest_asyncio.fixture(autouse=True, loop_scope="session")
async def _close_orm_thread_connections() -> AsyncIterator[None]:
    """Closes the connections sync_to_async opened, so PostgreSQL can drop the test DB."""
    yield
    await sync_to_async(connections.close_all)()
