"""Benchmark: reading a 10,000-row invoice list in a real Chromium. Prints figures; asserts nothing.

    .venv/bin/python bench/long_list.py [--rows 10000] [--locator-rows 500]

Against the Papeterie Dupont sandbox with a long history (``/_sandbox/accounts/acme/history``), logged in
with the connector, the whole list on one page (``page_size``) and then in pages of 10:

* the kit's way (what ``HtmlTable.read`` does): one ``page.content()`` a page, parsed by BeautifulSoup;
* one ``page.evaluate`` returning every row's cells (parsing left in the page);
* Playwright locators, one round trip a cell (measured on ``--locator-rows`` rows, per row);
* ``list_documents`` of the connector: a daily run's listing (a cursor: one page of 10,000 rows read whole),
  and a full pass stopped at ``GLANEUR_MAX_LIST_PAGES`` in pages of 10.

Python memory is tracemalloc's peak during each step; Chromium's is the renderer's JS heap as Chromium reports it.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from datetime import date
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROWS_JS = """(selector) => Array.from(document.querySelectorAll(selector + ' tbody tr'), row =>
  [...Array.from(row.cells, cell => cell.innerText.trim()), row.querySelector('a.pdf')?.getAttribute('href') || ''])"""


def measured(step, memory: bool = True):
    """The step's result, wall seconds and CPU seconds of this process (timed alone), and its Python memory peak
    (tracemalloc, on a second call: tracing slows Python down several times)."""
    started, cpu = time.perf_counter(), time.process_time()
    result = step()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak = 0
    if memory:
        tracemalloc.start()
        try:
            step()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    return result, seconds, cpu, peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--locator-rows", type=int, default=200)
    args = parser.parse_args()
    os.environ.update({"GLANEUR_HOME": tempfile.mkdtemp(prefix="glaneur-bench-"), "GLANEUR_MAX_LIST_PAGES": "100"})

    from glaneur.contract import Credentials
    from connectors.papeterie_dupont import PapeterieDupont
    from glaneur.settings import get_settings, reset_settings
    from sandbox.data import SUPPLIERS, accounts_of
    from sandbox.server import start_sandbox
    from tasks.browser import launch_browser

    reset_settings()
    password = accounts_of(SUPPLIERS["papeterie-dupont"])["acme"].password
    with start_sandbox() as sandbox, launch_browser(get_settings()) as browser:
        url = sandbox.urls["papeterie-dupont"]

        def control(path: str, body: dict) -> None:
            httpx.post(f"{url}/_sandbox{path}", json=body, trust_env=False).raise_for_status()

        control("/accounts/acme/history", {"count": args.rows - 23})
        control("/accounts/acme/list", {"page_size": 100_000})
        context = browser.new_context()
        page = context.new_page()
        connector = PapeterieDupont(page, url)
        connector.login(Credentials("acme", password))
        started = time.perf_counter()
        connector.goto("/factures?page=1")
        connector.expect_page("invoices")
        print(f"{args.rows} rows on one page: served and loaded in {time.perf_counter() - started:.2f} s")

        html, seconds, cpu, peak = measured(page.content)
        print(f"page.content(): {len(html) / 2**20:.1f} MiB of HTML in {seconds:.2f} s ({cpu:.2f} CPU-s here), "
              f"Python peak {peak / 2**20:.0f} MiB")
        documents, seconds, cpu, peak = measured(lambda: PapeterieDupont.parse_listing(html))
        print(f"kit parse (BeautifulSoup, html.parser): {len(documents)} documents in {seconds:.2f} s ({cpu:.2f} CPU-s), "
              f"Python peak {peak / 2**20:.0f} MiB")
        cells, seconds, cpu, peak = measured(lambda: page.evaluate(ROWS_JS, "table#factures"))
        print(f"page.evaluate (cells as text, parsing not included): {len(cells)} rows in {seconds:.2f} s "
              f"({cpu:.2f} CPU-s here), Python peak {peak / 2**20:.0f} MiB")
        rows = page.locator("table#factures tbody tr")

        def by_locators() -> int:
            for index in range(args.locator_rows):
                row = rows.nth(index)
                row.locator("td").all_inner_texts()
                row.locator("a.pdf").get_attribute("href")
            return args.locator_rows

        count, seconds, _, _ = measured(by_locators, memory=False)
        print(f"locators (one round trip a cell): {count} rows in {seconds:.2f} s, {seconds / count * 1000:.1f} ms a row, "
              f"so about {seconds / count * args.rows:.0f} s for {args.rows} rows")
        heap = page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : 0")
        print(f"Chromium's JS heap with the page open: {heap / 2**20:.0f} MiB")

        listing, seconds, cpu, peak = measured(lambda: connector.list_documents(date(2026, 8, 21)))
        print(f"list_documents with a cursor (one {args.rows}-row page read whole): {len(listing)} kept in "
              f"{seconds:.2f} s ({cpu:.2f} CPU-s here), Python peak {peak / 2**20:.0f} MiB")
        control("/accounts/acme/list", {"page_size": 10})
        listing, seconds, cpu, peak = measured(lambda: connector.list_documents(None))
        print(f"list_documents, full pass in pages of 10: {listing.pages} pages ({len(listing)} rows) in {seconds:.2f} s "
              f"({cpu:.2f} CPU-s here), left at {listing.left_at}, Python peak {peak / 2**20:.0f} MiB")
        context.close()
    print(f"peak RSS: this process (sandbox included) {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB, "
          f"largest child (Chromium) {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
