"""The browser a collection drives: one Chromium per worker thread, one fresh context per account.

A flow run started alone (``glaneur run``, a process worker) launches Chromium and closes it at its
end (:func:`launch_browser`). A long-lived worker (infra/worker.py) runs many collections in each of
its threads: it wraps the thread's life in :func:`keep_browser`, and every :func:`launch_browser` in
that thread then hands over the same Chromium (launched at first use, relaunched if it died), which
is closed when the thread ends. Each account still gets a fresh context (cookies, storage, cache:
nothing shared between accounts or channels), always closed by :func:`portal_session`, so memory
stays flat however many channels the thread runs.

Evidence for ``portal_changed``: a screenshot (password fields masked) and a Playwright trace.
Tracing starts only after login, so the trace never records a typed password, and cookie and
authorization headers are removed from it before it is kept.
"""

from __future__ import annotations

import io
import json
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Playwright loads when a browser is first needed, not when flows are imported
    from playwright.sync_api import Browser, BrowserContext, Page

    from glaneur.settings import Settings

CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SECRET_HEADERS = {"cookie", "set-cookie", "authorization", "proxy-authorization", "x-csrf-token"}


_kept = threading.local()  # this thread's Playwright and Chromium, when inside keep_browser()


def _launch(playwright, settings: Settings) -> Browser:
    return playwright.chromium.launch(
        executable_path=settings.chromium_executable(),
        headless=settings.browser_headless,
        args=CHROMIUM_ARGS,
    )


@contextmanager
def launch_browser(settings: Settings) -> Iterator[Browser]:
    """A Chromium for one collection: this thread's kept one (see :func:`keep_browser`), else a new
    one closed at the end of the block."""
    if getattr(_kept, "playwright", None) is not None:
        if _kept.browser is None or not _kept.browser.is_connected():
            _kept.browser = _launch(_kept.playwright, settings)
            _kept.launches += 1
        yield _kept.browser
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = _launch(playwright, settings)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def keep_browser() -> Iterator[None]:
    """For the life of a long-lived thread: one Chromium for every collection the thread runs
    (launched at first use), closed with its Playwright when the block ends."""
    from playwright.sync_api import sync_playwright

    if getattr(_kept, "playwright", None) is not None:
        raise RuntimeError("keep_browser() is already active in this thread")
    with sync_playwright() as playwright:
        _kept.playwright, _kept.browser, _kept.launches = playwright, None, 0
        try:
            yield
        finally:
            browser, _kept.playwright, _kept.browser = _kept.browser, None, None
            if browser is not None and browser.is_connected():
                browser.close()


def kept_browser_launches() -> int:
    """How many times this thread's kept Chromium was launched (1 while it never died)."""
    return getattr(_kept, "launches", 0)


@dataclass
class PortalSession:
    context: BrowserContext
    page: Page
    tracing: bool = False

    def start_trace(self) -> None:
        """Record what follows (the listing, the downloads) for the evidence of a failure: DOM snapshots of each
        step, which the trace viewer shows as the page. No screencast: its frames cost Chromium 0.14 CPU second
        on every run (``bench/chromium_cost.py``), and :meth:`evidence` takes the screenshot that matters."""
        self.context.tracing.start(screenshots=False, snapshots=True)
        self.tracing = True

    def evidence(self) -> dict[str, bytes]:
        """Screenshot and (redacted) trace of what the browser shows now."""
        found: dict[str, bytes] = {}
        try:
            found["screenshot.png"] = self.page.screenshot(
                full_page=True, mask=[self.page.locator("input[type=password]")]
            )
        except Exception:  # a crashed page still lets us keep the trace
            pass
        if self.tracing:
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "trace.zip"
                self.context.tracing.stop(path=path)
                self.tracing = False
                found["trace.zip"] = redact_trace(path.read_bytes())
        return found


@contextmanager
def portal_session(browser: Browser, settings: Settings, storage_state: dict | None = None) -> Iterator[PortalSession]:
    """A fresh context; ``storage_state`` restores a remembered portal session (cookies, local storage)."""
    context = browser.new_context(
        locale="fr-FR", timezone_id="Europe/Paris", accept_downloads=True, storage_state=storage_state
    )
    context.set_default_timeout(settings.navigation_timeout_seconds * 1000)
    session = PortalSession(context, context.new_page())
    try:
        yield session
    finally:
        if session.tracing:
            context.tracing.stop()
        context.close()


def redact_trace(trace_zip: bytes) -> bytes:
    """Drop secret headers from a Playwright trace (network entries carry request and response headers)."""
    source = zipfile.ZipFile(io.BytesIO(trace_zip))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename.endswith((".trace", ".network")):
                data = b"\n".join(_redact_line(line) for line in data.split(b"\n"))
            target.writestr(item, data)
    return out.getvalue()


def _redact_line(line: bytes) -> bytes:
    if not line.strip():
        return line
    try:
        event = json.loads(line)
    except ValueError:
        return line
    _redact(event)
    return json.dumps(event, separators=(",", ":")).encode()


def _redact(node: object) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("headers", "cookies") and isinstance(value, list):
                for header in value:
                    if isinstance(header, dict) and (key == "cookies" or str(header.get("name", "")).lower() in SECRET_HEADERS):
                        header["value"] = "[redacted]"
            else:
                _redact(value)
    elif isinstance(node, list):
        for item in node:
            _redact(item)
