"""Benchmark: what one channel's unchanged day costs Chromium, step by step (issue 20's largest cost).

    .venv/bin/python bench/chromium_cost.py [--rounds 15] [--provider papeterie-dupont]

One Chromium (Glaneur's flags), the sandbox portal, a session remembered once (what the vault keeps
between runs). Each round is one channel's day without anything new, as ``collect_channel`` runs it
the day after the first one (the cursor at the newest invoice): a fresh context with the remembered session (``tasks.browser.portal_session``), the connector's session
check (``is_logged_in``) and its listing (``list_documents``). The same round is then cut into its parts,
and the same two addresses are fetched through the context's request API (same cookies, no page).
CPU seconds are those of Chromium's whole process tree (``/proc``, reaped renderers included); run it on
an idle machine. Prints a table and writes ``var/bench/chromium_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int, include_root: bool = False) -> float:
    """CPU seconds of ``root``'s descendants (and of ``root`` itself with ``include_root``), including the
    children they have reaped (cutime, cstime)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0.0, [root] if include_root else list(children.get(root, []))
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15]) / TICK
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--provider", default="papeterie-dupont", choices=["papeterie-dupont", "energie-verte"])
    args = parser.parse_args()
    os.environ.setdefault("GLANEUR_HOME", tempfile.mkdtemp(prefix="glaneur-bench-"))

    from playwright.sync_api import sync_playwright

    from connectors.catalog import connector_class
    from glaneur.contract import Credentials
    from glaneur.settings import PROJECT_ROOT, get_settings
    from sandbox.data import SUPPLIERS, accounts_of
    from sandbox.server import start_sandbox
    from tasks.browser import _launch, portal_session

    settings = get_settings()
    login, account = next(iter(accounts_of(SUPPLIERS[args.provider]).items()))  # its first, plain account
    password = account.password
    me = os.getpid()
    figures: dict[str, dict[str, float]] = {}

    with start_sandbox() as sandbox, sync_playwright() as playwright:
        url = sandbox.urls[args.provider]
        browser = _launch(playwright, settings)
        cls = connector_class(args.provider)
        with portal_session(browser, settings) as session:  # the first day: log in once, remember the session
            first = cls(session.page, url, settings)
            assert first.login(Credentials(login, password)) is None
            since = max(document.document_date for document in first.list_documents(None))  # the cursor after it
            remembered = session.context.storage_state()
        home = cls.home.path
        listing = cls.listing.path

        def measure(name: str, round_: callable) -> None:
            round_()  # warm
            cpu, wall = tree_cpu(me), time.perf_counter()
            for _ in range(args.rounds):
                round_()
            figures[name] = {"chromium_cpu_s": (tree_cpu(me) - cpu) / args.rounds,
                             "wall_s": (time.perf_counter() - wall) / args.rounds}

        def unchanged_day(trace: bool = True, screenshots: bool = True) -> None:
            with portal_session(browser, settings, remembered) as session:
                connector = cls(session.page, url, settings)
                assert connector.is_logged_in()
                if trace and screenshots:  # the trace with a screencast, as collect_channel recorded it before
                    session.context.tracing.start(screenshots=True, snapshots=True)
                    session.tracing = True
                elif trace:  # as collect_channel does, before the listing (its evidence when the list fails)
                    session.start_trace()
                assert connector.list_documents(since)  # the cursor's day is read again: one page

        def context_only() -> None:
            with portal_session(browser, settings, remembered):
                pass

        def first_page() -> None:
            with portal_session(browser, settings, remembered) as session:
                session.page.goto(url + home)

        def two_pages() -> None:
            with portal_session(browser, settings, remembered) as session:
                session.page.goto(url + home)
                session.page.goto(url + listing)

        def two_requests() -> None:
            with portal_session(browser, settings, remembered) as session:
                for path in (home, listing):
                    response = session.context.request.get(url + path)
                    assert response.ok and response.text()

        for name, round_ in (("unchanged day (session check, trace, list: as collect_channel)",
                              lambda: unchanged_day(screenshots=False)),
                             ("the same, its trace with a screencast (before)", unchanged_day),
                             ("the same, not traced", lambda: unchanged_day(trace=False)),
                             ("a fresh context alone", context_only),
                             ("context and its first page (home)", first_page),
                             ("context, home and list pages", two_pages),
                             ("context, the same two addresses through context.request", two_requests)):
            measure(name, round_)
        browser.close()

    print(f"{args.provider}, {args.rounds} rounds, one Chromium; per channel:")
    print(f"{'':62} {'Chromium CPU s':>15} {'wall s':>8}")
    for name, figure in figures.items():
        print(f"{name:62} {figure['chromium_cpu_s']:15.3f} {figure['wall_s']:8.3f}")
    out = PROJECT_ROOT / "var" / "bench" / "chromium_cost.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"provider": args.provider, "rounds": args.rounds, "home": home, "listing": listing,
                               "figures": figures}, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
