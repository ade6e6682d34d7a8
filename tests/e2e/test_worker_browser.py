"""A long-lived worker thread keeps one Chromium for all its collections, each account in a fresh context
that is always closed (tasks/browser.py, used by infra/worker.py's lanes). Real Chromium."""

from __future__ import annotations

import threading

import pytest

from glaneur.settings import get_settings
from tasks.browser import keep_browser, kept_browser_launches, launch_browser, portal_session

pytestmark = pytest.mark.slow


def test_a_kept_browser_serves_every_collection_of_its_thread_with_fresh_contexts_always_closed(glaneur_home):
    settings = get_settings()
    with keep_browser():
        seen = []
        for channel in range(3):
            with launch_browser(settings) as browser:
                seen.append(browser)
                with portal_session(browser, settings) as first:
                    first.page.set_content("<p>a</p>")
                    first.context.add_cookies([{"name": "session", "value": f"c{channel}", "url": "http://portal.test/"}])
                with portal_session(browser, settings) as second:  # another account: no cookie of the first
                    assert second.context.cookies() == []
                assert browser.contexts == []  # every context closed, whatever the account did
        with pytest.raises(RuntimeError):  # a failing collection still closes its context
            with launch_browser(settings) as browser, portal_session(browser, settings):
                raise RuntimeError("portal broke")
        assert browser.contexts == []
        assert all(b is seen[0] for b in seen) and kept_browser_launches() == 1
        kept = seen[0]
        kept.close()  # Chromium died between two collections: the next one gets a new one
        with launch_browser(settings) as again:
            assert again is not kept and again.is_connected()
        assert kept_browser_launches() == 2
    assert not again.is_connected()  # closed with the thread's keep_browser


def test_without_keep_browser_each_collection_launches_and_closes_its_own(glaneur_home):
    settings = get_settings()
    with launch_browser(settings) as browser:
        assert browser.is_connected()
    assert not browser.is_connected()


def test_each_thread_keeps_its_own_browser(glaneur_home):
    settings = get_settings()
    browsers: dict[str, object] = {}

    def lane(name: str) -> None:
        with keep_browser():
            for _ in range(2):
                with launch_browser(settings) as browser:
                    assert browsers.setdefault(name, browser) is browser

    threads = [threading.Thread(target=lane, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(browsers) == 2 and browsers["a"] is not browsers["b"]
