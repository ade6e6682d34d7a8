"""A hostile portal (issue 19 item 2): what a portal says is data, never a path, markup or a terminal command.

Real Prefect server, real Chromium, the sandbox portals with hostile invoices added through ``/_sandbox``:
references with ``../``, absolute paths, NUL, newlines, terminal escapes, Windows paths, references that
sanitise alike, HTML and Markdown; an amount that is markup. Other hostile cases live beside their
feature in ``test_collect_hostile_portals.py`` (a document far over the size limit, links and redirects
to another origin, a "next page" loop), ``test_long_list.py`` (a 10,000-row list, a list longer than one
run reads) and ``test_collect_channel.py`` (HTML where a PDF should be).

After each run: nothing written outside the channel's prefix (database keys and the files on disk),
every reference kept as the portal gave it, nothing unescaped in any artifact field, mail or CLI output.
"""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest
from typer.testing import CliRunner

from glaneur.settings import get_settings
from tests.e2e.test_collect_channel import filed_documents, make_channel, run
from tests.e2e.test_collect_hostile_portals import add_invoice, served
from tests.e2e.test_run_lifecycle import read_artifacts

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

EV = "energie-verte"
PD = "papeterie-dupont"
HOSTILE_REFERENCES = [
    "../../../../tmp/glaneur-escaped",
    "/etc/passwd",  # (".." alone is left out: every HTTP client folds it away, so no portal can serve it at its URL)
    "C:\\Windows\\win.ini",
    "nul\x00byte",
    "two\nlines\r\n",
    "\x1b[2J\x1b]0;pwned\x07clear",
    "FA/001",
    "FA-001",
    "FA 001",
    "<img src=x onerror=alert(1)>",
    "[x](javascript:alert(1))",
    "**gras** | colonne |",
]
MARKUP = ("<img", "<script", "](javascript", "\x1b", "\x00")


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def assert_escaped(text: str, where: str) -> None:
    for raw in MARKUP:
        assert raw not in text, f"{raw!r} unescaped in {where}: {text[:500]!r}"


def assert_mails_escaped(home: Path) -> None:
    """HTML parts escape markup; no part, plain or HTML, nor the subject carries a raw terminal escape or NUL."""
    for path in sorted((home / "outbox").glob("*.eml")) if (home / "outbox").exists() else []:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for text in [str(message["Subject"])] + [p.get_content() for p in message.walk() if p.get_content_type() in (
                "text/plain", "text/html")]:
            assert "\x1b" not in text and "\x00" not in text, text[:300]
        for part in message.walk():
            if part.get_content_type() == "text/html":
                assert_escaped(part.get_content(), "a mail's HTML")


def test_hostile_references_are_filed_inside_the_channel_prefix_as_given_and_shown_escaped(glaneur_home, portals):
    slug = make_channel(EV, ("acme-bis@client.test", None))
    for reference in HOSTILE_REFERENCES:
        assert add_invoice(portals, "acme-bis@client.test", EV, number=reference) == reference

    summary = run(slug)

    assert summary["status"] == "ok", summary
    assert summary["new"] == 5 + len(HOSTILE_REFERENCES)
    documents = filed_documents()
    assert {d.provider_reference for d in documents} >= set(HOSTILE_REFERENCES)  # kept as the portal gave them
    prefix = f"org/factures/{slug}/"
    assert all(d.storage_key.startswith(prefix) for d in documents)
    assert len({d.storage_key for d in documents}) == len(documents)  # FA/001, FA-001, FA 001: three keys

    # On disk: every file inside the channel's folder of the store; nothing escaped from the home.
    root = get_settings().resolved_storage_path
    stored = files_under(root)
    assert stored and all(p.resolve().is_relative_to((root / prefix).resolve()) for p in stored), stored
    assert not Path("/tmp/glaneur-escaped").exists()
    channel_folder = (root / prefix).resolve()
    assert not [p for p in files_under(glaneur_home.parent) if not p.resolve().is_relative_to(channel_folder)
                and ("escaped" in p.name or p.name in ("passwd", "win.ini"))]

    # Nothing asked of anything but the portal's own download addresses.
    assert all(r["path"].startswith(("/connexion", "/espace-client", "/api/factures")) for r in served(portals, EV))

    # Shown, never interpreted: artifacts, the CLI's documents listing, mails.
    for artifact in read_artifacts(f"channel-{slug}"):
        for field in (artifact.description or "", str(artifact.data)):
            assert_escaped(field, "an artifact")
    listing = CliRunner().invoke(__import__("cli.main", fromlist=["app"]).app, ["documents", "--channel", slug],
                                 env={"COLUMNS": "250"})
    assert listing.exit_code == 0, listing.output
    assert "\x1b" not in listing.output and "\x00" not in listing.output  # a terminal: escapes are what harm
    assert_mails_escaped(glaneur_home)

    again = run(slug)  # nothing filed twice
    assert again["status"] == "ok" and again["new"] == 0, again


@pytest.mark.parametrize("provider, login", [(PD, "acme-bis"), (EV, "acme-bis@client.test")])
def test_markup_where_the_amount_goes_is_portal_changed_and_shown_as_text(glaneur_home, portals, provider, login):
    slug = make_channel(provider, (login, None))
    shown = "<img src=x onerror=alert(1)> [x](javascript:alert(1)) \x1b[31m"
    add_invoice(portals, login, provider, number="MARKUP-1", shown_amount=shown)

    summary = run(slug)

    assert summary["status"] == "portal_changed", summary
    assert "MARKUP-1" in summary["message"] or "img" in summary["message"]
    assert "MARKUP-1" not in {d.provider_reference for d in filed_documents()}
    artifacts = read_artifacts(f"channel-{slug}")
    assert any("portal_changed" in str(a.data) or "changed" in str(a.data).lower() for a in artifacts)
    for artifact in artifacts:
        for field in (artifact.description or "", str(artifact.data)):
            assert_escaped(field, "an artifact")
    assert_mails_escaped(glaneur_home)
    history = CliRunner().invoke(__import__("cli.main", fromlist=["app"]).app, ["history", "--channel", slug],
                                 env={"COLUMNS": "250"})
    assert history.exit_code == 0 and "portal_changed" in history.output
    assert "\x1b[31m" not in history.output
