"""What the terminal shows: no escape sequence from outside, slugs whole in 80 columns, the demo's
Prefect server found by itself, and a help that loads no database layer."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from cli import common
from cli.main import _use_the_demo_prefect_server, app

runner = CliRunner()


def test_control_characters_from_outside_never_reach_the_terminal():
    hostile = "Facture\x1b]8;;http://evil.example\x07clic\x1b[2J\x9b31m\r"
    cleaned = common.clean(hostile)
    assert not any(ord(c) < 32 and c not in "\t\n" for c in cleaned)
    assert "\x9b" not in cleaned and "Facture" in cleaned and "clic" in cleaned
    assert common.cell(hostile).plain == cleaned


def test_a_long_slug_stays_whole_in_80_columns(glaneur_home):
    table = common.table("Channels", "Channel", "Provider", "Accounts", "Status", "Last run")
    table.add_row(
        common.cell("acme-papeterie-dupont"), common.cell("papeterie-dupont"), common.cell("acme (ok)"),
        common.status_and_message("wrong_credentials", "The portal refused the login or password; update them."),
        common.cell("2026-12-01 06:00"),
    )
    console = common.Console(width=80, highlight=False, record=True)
    console.print(table)
    assert "acme-papeterie-dupont" in console.export_text()


def test_help_loads_neither_the_database_layer_nor_prefect():
    code = (
        "import sys; from cli.main import app\n"
        "from typer.testing import CliRunner\n"
        "CliRunner().invoke(app, ['--help'])\n"
        "print(sorted(m for m in ('sqlalchemy', 'sqlmodel', 'alembic', 'prefect', 'glaneur.models') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


def test_statements_parse_loads_no_database_layer(tmp_path):
    sample = tmp_path / "empty.xml"
    sample.write_text("not a statement")
    code = (
        "import sys; from cli.main import app\n"
        "from typer.testing import CliRunner\n"
        f"CliRunner().invoke(app, ['statements', 'parse', {str(sample)!r}])\n"
        "print(sorted(m for m in ('sqlalchemy', 'sqlmodel', 'alembic', 'prefect') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


class _Health(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.send_response(200 if self.path == "/api/health" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def clean_prefect_env(monkeypatch, glaneur_home):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    yield glaneur_home
    os.environ.pop("PREFECT_API_URL", None)


def test_the_demo_server_is_used_when_it_answers(clean_prefect_env):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        marker = clean_prefect_env / "prefect" / "api-url"
        marker.parent.mkdir(parents=True, exist_ok=True)
        url = f"http://127.0.0.1:{server.server_address[1]}/api"
        marker.write_text(url)
        _use_the_demo_prefect_server()
        assert os.environ["PREFECT_API_URL"] == url
    finally:
        server.shutdown()


def test_a_stale_marker_or_an_explicit_url_leaves_prefect_alone(clean_prefect_env, monkeypatch):
    marker = clean_prefect_env / "prefect" / "api-url"
    marker.parent.mkdir(parents=True, exist_ok=True)
    with ThreadingHTTPServer(("127.0.0.1", 0), _Health) as gone:
        port = gone.server_address[1]
    marker.write_text(f"http://127.0.0.1:{port}/api")  # nothing listens there any more
    _use_the_demo_prefect_server()
    assert "PREFECT_API_URL" not in os.environ
    monkeypatch.setenv("PREFECT_API_URL", "http://prefect.example/api")
    _use_the_demo_prefect_server()
    assert os.environ["PREFECT_API_URL"] == "http://prefect.example/api"


def test_flags_show_no_type_hint():
    result = runner.invoke(app, ["channel", "add", "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0
    assert "<bool>" not in result.output and "--no-collect" in result.output
