"""Playwright fixtures for browser tests in Debian's Chromium.

Use them with ``pytest_plugins = ["tests.browser"]`` in ``tests/conftest.py``
(or import ``browser``, ``page`` and ``screenshot`` into a test module), mark
the tests ``@pytest.mark.browser`` and serve the portal with pytest-django's
``live_server``.

- ``browser``: one headless Chromium per test session (``PORTAL_CHROMIUM``
  overrides ``/usr/bin/chromium``; ``make chromium`` installs it).
- ``page``: a fresh browser context and page per test (own cookies).
- ``screenshot(name)``: saves a full-page PNG of ``page`` under
  ``test-artifacts/screenshots/<name>.png`` and returns its path.
"""

import os
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("PORTAL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"


@pytest.fixture(scope="session")
def playwright_instance():
    # Playwright's sync API runs an event loop in the test thread; Django's
    # ORM refuses to run there unless told that this is deliberate.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="session")
def browser(playwright_instance):
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium is missing at {CHROMIUM}: run `make chromium` (apt-get install chromium) "
            "or set PORTAL_CHROMIUM."
        )
    chromium = playwright_instance.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US")
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def screenshot(page):
    def take(name):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
