"""The documentation site, built as CI builds it (`mkdocs build --strict`, offline) and opened
in headless Chromium: the index and an API page have the navigation and the search box.
Skipped without the Debian chromium/chromium-driver, as the web page's browser tests are."""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("browser", ROOT / "tools" / "browser.py")
browser = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(browser)

pytest.importorskip("mkdocs", reason="the site needs the docs extra")
if browser.missing():
    pytest.skip(f"browser tests need Chromium: {browser.missing()}", allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402

pytestmark = pytest.mark.slow


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The site built into a temporary folder and served over HTTP (the search index is
    fetched by a web worker, which file:// pages may not start); yields its URL."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    handler = functools.partial(_QuietHandler, directory=str(out))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    chrome = browser.chromium()
    yield chrome
    chrome.quit()


@pytest.mark.parametrize("page", ["", "reference/api/"])
def test_page_has_navigation_and_search(site: str, driver: Any, page: str, tmp_path: Path) -> None:
    driver.get(site + page)
    nav = driver.find_element(By.CSS_SELECTOR, "nav.md-nav--primary")
    titles = [a.get_attribute("textContent").strip() for a in nav.find_elements(By.TAG_NAME, "a")]
    for title in ("Getting started", "Train on your own data", "Tips & FAQ", "API"):
        assert title in titles, (title, titles)
    search = driver.find_element(By.CSS_SELECTOR, "input.md-search__input")
    assert search.get_attribute("placeholder") == "Search"
    if page:  # the API page rendered the docstrings, not the mkdocstrings directives
        body = driver.find_element(By.TAG_NAME, "article").text
        assert "Translator" in body and ":::" not in body
    shot = tmp_path / "page.png"
    assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
