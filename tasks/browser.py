"""The browser a collection drives: one Chromium per flow run, one fresh context per account.

Evidence for ``portal_changed``: a screenshot (password fields masked) and a Playwright trace.
Tracing starts only after login, so the trace never records a typed password, and cookie and
authorization headers are removed from it before it is kept.
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from glaneur.settings import Settings

CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SECRET_HEADERS = {"cookie", "set-cookie", "authorization", "proxy-authorization", "x-csrf-token"}


@contextmanager
def launch_browser(settings: Settings) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=settings.chromium_executable(),
            headless=settings.browser_headless,
            args=CHROMIUM_ARGS,
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PortalSession:
    context: BrowserContext
    page: Page
    tracing: bool = False

    def start_trace(self) -> None:
        self.context.tracing.start(screenshots=True, snapshots=True)
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
