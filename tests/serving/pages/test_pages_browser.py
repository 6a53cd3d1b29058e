"""The planner pages in a real headless Chromium (Debian's ``chromium``), driven over the DevTools protocol.

The app runs under uvicorn on loopback with a real SQLite store and a real torch predictor. The test signs in
through the form, opens the queue and the recommendation page, takes a screenshot of it, and approves through
the form; the approval must reach the outbox. Skipped, visibly, where no Chromium is installed
(``apt-get install -y chromium``).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CDP:
    """A minimal DevTools-protocol client over one page's websocket (websockets' sync client)."""

    def __init__(self, ws_url: str):
        from websockets.sync.client import connect

        self.ws = connect(ws_url, max_size=64 * 1024 * 1024)
        self.ids = itertools.count(1)
        self.events: list[dict] = []

    def call(self, method: str, **params):
        i = next(self.ids)
        self.ws.send(json.dumps({"id": i, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=30))
            if msg.get("id") == i:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def eval(self, js: str):
        r = self.call("Runtime.evaluate", expression=js, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{js}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, js: str, timeout: float = 20.0):
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            try:
                v = self.eval(js)
            except RuntimeError:
                v = None
            if v:
                return v
            time.sleep(0.1)
        raise TimeoutError(f"waited {timeout} s for {js}; page: {self.eval('location.href')}")

    def goto(self, url: str, ready_js: str = "document.readyState === 'complete'"):
        self.call("Page.navigate", url=url)
        time.sleep(0.05)
        return self.wait_for(ready_js)

    def close(self):
        self.ws.close()


@contextlib.contextmanager
def serve_in_thread(app):
    """``app`` under uvicorn on a free loopback port in a thread; yields its base URL, stops it on exit."""
    import uvicorn

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        t.join(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import os

    from features.settings import load_settings
    from tests.serving._pages_fixture import make_world

    home = tmp_path_factory.mktemp("pages-home")
    os.environ["REPLENISH_HOME"] = str(home)
    world = make_world(load_settings(home=home))
    with serve_in_thread(world.app) as base:
        yield world, base


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium): browser test not run")
    port = _free_port()
    profile = tempfile.mkdtemp(prefix="rp-chromium-")
    proc = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            f"--remote-debugging-port={port}",
            "--remote-allow-origins=*",
            "--window-size=1280,1600",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        pages = None
        for _ in range(150):
            try:
                pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=1))
                if any(p["type"] == "page" for p in pages):
                    break
            except OSError:
                time.sleep(0.1)
        assert pages, "Chromium did not open its DevTools endpoint"
        cdp = CDP(next(p for p in pages if p["type"] == "page")["webSocketDebuggerUrl"])
        cdp.call("Page.enable")
        yield cdp
        cdp.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


def test_sign_in_review_screenshot_and_approve_through_the_form(server, browser, tmp_path):
    from tests.serving._pages_fixture import outbox_for

    world, base = server
    cdp = browser
    # Sign in through the form (typing the key, pressing the button).
    cdp.goto(f"{base}/ui/queue", "document.querySelector('#login') !== null")
    assert "/ui/login" in cdp.eval("location.href")
    cdp.eval(f"document.querySelector('input[name=api_key]').value = {json.dumps(world.keys['a-planner'])}")
    cdp.eval("document.querySelector('#login button[type=submit]').click()")
    cdp.wait_for("document.querySelector('#queue') !== null && document.readyState === 'complete'")
    assert world.rec_id in cdp.eval("document.querySelector('#queue').innerText")

    # Open the recommendation from the queue by clicking its link.
    cdp.eval(f"document.querySelector('a[href=\"/ui/recommendations/{world.rec_id}\"]').click()")
    cdp.wait_for("document.querySelector('#fan svg') !== null && document.readyState === 'complete'")
    assert cdp.eval("document.querySelector('#state').innerText") == "routed"
    assert cdp.eval("document.querySelectorAll('#fan svg, #inventory svg').length") == 2
    width = cdp.eval("document.querySelector('#fan svg').getBoundingClientRect().width")
    assert width > 200, f"fan chart rendered {width} px wide"

    shot = base64.b64decode(
        cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
    )
    out = Path(tmp_path) / "recommendation.png"
    out.write_bytes(shot)
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20_000, len(shot)
    print(f"screenshot: {out} ({len(shot)} bytes)")

    # Approve through the form.
    cdp.eval("document.querySelector('#approve-form input[name=comment]').value = 'approved in the browser'")
    cdp.eval("document.querySelector('#approve').click()")
    cdp.wait_for("document.querySelector('#msg') !== null && document.readyState === 'complete'")
    assert cdp.eval("document.querySelector('#state').innerText") == "approved"
    assert "approved in the browser" not in cdp.eval("document.querySelector('#error')?.innerText || ''")
    items = outbox_for(world.engine, "a", world.rec_id)
    assert len(items) == 1 and items[0].kind == "purchase_order"
