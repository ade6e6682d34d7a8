"""Bad settings end in one line naming the variable to fix, never in a traceback, never echoing the value."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from cli.main import app
from glaneur.errors import ConfigurationError
from glaneur.settings import get_settings, normalise_database_url, reset_settings
from tests.pg import free_port

SECRET = "s3cr3t-Pw"


@pytest.fixture
def env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("GLANEUR_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GLANEUR_HOME", str(tmp_path / "var"))
    reset_settings()
    yield monkeypatch
    reset_settings()


def configure(env, name: str, value: str) -> None:
    env.setenv(name, value)
    reset_settings()


def init_fails(expect: str) -> str:
    """`glaneur init`: exit 2, one red 'Error: ...' line on stderr naming what to fix, no traceback."""
    result = CliRunner().invoke(app, ["init"], env={"COLUMNS": "250"})
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.output
    message = " ".join(result.stderr.split())
    assert expect in message, message
    assert SECRET not in result.output
    return message


@pytest.mark.parametrize(
    "value",
    [f'{{"papeterie-dupont": "http://{SECRET}"', "papeterie-dupont=http://127.0.0.1:8701", '["http://x"]'],
)
def test_malformed_portal_urls_name_the_setting(env, value):
    configure(env, "GLANEUR_PORTAL_URLS", value)
    with pytest.raises(ConfigurationError, match="GLANEUR_PORTAL_URLS") as caught:
        get_settings()
    assert "JSON object" in str(caught.value) and SECRET not in str(caught.value)
    init_fails("GLANEUR_PORTAL_URLS")


def test_a_portal_url_that_is_not_http_names_the_provider(env):
    configure(env, "GLANEUR_PORTAL_URLS", '{"papeterie-dupont": "127.0.0.1:8701", "ok": "https://portal.example"}')
    with pytest.raises(ConfigurationError, match=r"GLANEUR_PORTAL_URLS: the URL of 'papeterie-dupont' is not"):
        get_settings()


def test_a_value_of_the_wrong_type_names_the_setting(env):
    configure(env, "GLANEUR_RETRIES", "three")
    init_fails("GLANEUR_RETRIES: Input should be a valid integer")


@pytest.mark.parametrize(
    ("url", "expect"),
    [
        (f"not a url {SECRET}", "GLANEUR_DATABASE_URL is not a database URL"),
        (f"postgresql://user:{SECRET}@host:notaport/glaneur", "GLANEUR_DATABASE_URL is not a database URL"),
        (f"nosuchdb://user:{SECRET}@host/glaneur", "GLANEUR_DATABASE_URL names a database kind"),
        (f"postgresql+psycopg2://user:{SECRET}@host/glaneur", "GLANEUR_DATABASE_URL needs the Python driver psycopg2"),
    ],
)
def test_an_unusable_database_url_names_the_setting(env, url, expect):
    configure(env, "GLANEUR_DATABASE_URL", url)
    init_fails(expect)


def test_an_unreachable_database_names_the_setting_and_hides_the_password(env):
    configure(env, "GLANEUR_DATABASE_URL", f"postgresql://glaneur:{SECRET}@127.0.0.1:{free_port()}/glaneur")
    message = init_fails("Cannot connect to the database postgresql+psycopg://glaneur:***@127.0.0.1")
    assert "(GLANEUR_DATABASE_URL)" in message


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://u:p@h:5432/d", "postgresql+psycopg://u:p@h:5432/d"),
        ("postgres://u:p@h/d", "postgresql+psycopg://u:p@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_postgresql_urls_use_the_installed_driver(env, given, used):
    assert normalise_database_url(given) == used
    configure(env, "GLANEUR_DATABASE_URL", given)
    assert get_settings().resolved_database_url == used


def test_a_percent_encoded_password_reaches_alembic_intact(env):
    from glaneur.db import alembic_config

    url = "postgresql+psycopg://glaneur:p%40ss%25word@db:5432/glaneur"
    assert alembic_config(url).get_main_option("sqlalchemy.url") == url


def test_headless_collections_run_in_debians_headless_shell_and_a_visible_browser_in_the_full_chromium(env, tmp_path):
    """Issue 20: the headless shell is what Playwright runs headless; it costs a collection ~40% of the CPU."""
    binaries = tmp_path / "bin"
    binaries.mkdir()
    for name in ("chromium", "chromium-headless-shell"):
        (binaries / name).write_text("#!/bin/sh\n")
        (binaries / name).chmod(0o755)
    env.setenv("PATH", str(binaries))
    env.setenv("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path / "no-playwright-browsers"))

    assert get_settings().chromium_executable() == str(binaries / "chromium-headless-shell")
    configure(env, "GLANEUR_BROWSER_HEADLESS", "false")
    assert get_settings().chromium_executable() == str(binaries / "chromium")
    configure(env, "GLANEUR_BROWSER_HEADLESS", "true")
    (binaries / "chromium-headless-shell").unlink()  # a distribution without the package: the full one, headless
    assert get_settings().chromium_executable() == str(binaries / "chromium")
    configure(env, "GLANEUR_CHROMIUM_PATH", str(binaries / "chromium"))
    assert get_settings().chromium_executable() == str(binaries / "chromium")
