"""/console: static files from the package, no external request, and, in a real headless Chromium (Debian's
package, driven by Playwright without any browser download), the tier table and a live chart that
updates from a replay feed."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from app.main import create_app
from app.routes.console import CONSOLE, STATIC
from app.settings import Settings
from market.cli import write_synthetic_csv
from market.synthetic import simulate
from tests.app.conftest import ClientFor

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; .ci/run installs it
HOST = "127.0.0.1"


def test_the_console_is_served_from_the_package_with_a_self_only_policy(quick_store: Path,
                                                                        client_for: ClientFor):
    with client_for(quick_store) as client:
        page = client.get("/console")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
        for name in ("console.js", "console.css"):
            assert f"{STATIC}/{name}" in page.text
            asset = client.get(f"{STATIC}/{name}")
            assert asset.status_code == 200 and asset.text == (CONSOLE / name).read_text()
        assert client.get(f"{STATIC}/../main.py").status_code == 404


def test_the_console_requests_nothing_from_elsewhere():
    for path in CONSOLE.iterdir():
        text = re.sub(r'xmlns="[^"]*"', "", path.read_text())  # an XML namespace is a name, not a request
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), f"{path.name} names a host"
        assert "@import" not in text and "fonts." not in text


@pytest.fixture()
def served(quick_store: Path, tmp_path: Path) -> Iterator[str]:
    """The real server on a free port, in a thread, following a synthetic market replayed at 20 bars/s."""
    csv = tmp_path / "SYNTH.csv"
    write_synthetic_csv(simulate(2000, 3), str(csv))
    settings = Settings(models_dir=quick_store, feeds=[f"SYNTH=replay:{csv}:20"], live_window_bars=100,
                        shadow_rate=1.0, log_level="warning", access_log=False)
    listener = socket.socket()
    listener.bind((HOST, 0))
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", access_log=False,
                                           lifespan="on", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://{HOST}:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        listener.close()


@pytest.mark.slow
def test_the_console_shows_the_family_and_a_live_chart_in_chromium(served: str, tmp_path: Path,
                                                                   quick_store: Path):
    if not CHROMIUM.is_file():
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium; .ci/run "
                    "installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package (dev extra)")
    with TestClient(create_app(Settings(models_dir=quick_store))) as client:
        tiers = [t["name"] for t in client.get("/tiers").json()["tiers"]]
    requested: list[str] = []
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.on("request", lambda r: requested.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(f"{served}/console")
            page.wait_for_selector("#tiers tbody tr[data-tier]", timeout=10_000)
            rows = "#tiers tbody tr[data-tier]"
            shown = page.eval_on_selector_all(rows, "rs => rs.map(r => r.dataset.tier)")
            assert shown == tiers
            chart = page.wait_for_selector("[data-symbol=SYNTH]", timeout=10_000)
            assert chart is not None
            symbol = "document.querySelector('[data-symbol=SYNTH]').dataset"
            page.wait_for_function(f"() => {symbol}.bars >= 3", timeout=15_000)
            before = int(chart.get_attribute("data-bars") or 0)
            page.wait_for_function(f"() => {symbol}.bars > {before}", timeout=15_000)  # a live update
            page.wait_for_function(f"() => ({symbol}.outcomes || 0) > 0", timeout=15_000)
            shadowed = "document.querySelector('#live tbody').textContent.includes('agree')"
            page.wait_for_function(f"() => {shadowed}", timeout=15_000)
            shot = Path(os.environ.get("CONSOLE_SCREENSHOT", tmp_path / "console.png"))
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    assert not errors, errors
    outside = [url for url in requested if not url.startswith(served)]
    assert not outside, f"the page reached outside the service: {outside}"
