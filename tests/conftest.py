"""Shared fixtures: a fresh Glaneur home per test; a real Prefect server and the sandbox portals per session."""

from __future__ import annotations

import json
import os

import httpx
import pytest

import connectors.catalog  # noqa: F401  installs the provider catalogue the domain looks providers up in

# Quiet, offline, fast-polling Prefect; short retry backoff so retried scenarios stay quick.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("GLANEUR_RETRY_BASE_SECONDS", "0.2")


@pytest.fixture
def glaneur_home(tmp_path, monkeypatch):
    from glaneur.db import migrate
    from glaneur.settings import reset_settings

    home = tmp_path / "var"
    monkeypatch.setenv("GLANEUR_HOME", str(home))
    reset_settings()
    migrate()
    yield home
    reset_settings()


@pytest.fixture(scope="session")
def pg_cluster():
    """A throwaway PostgreSQL cluster for the session (tests/pg.py); skipped where no server binaries exist."""
    from tests.pg import PostgresCluster, PostgresUnavailable, find_binaries

    try:
        find_binaries()
    except PostgresUnavailable as missing:
        pytest.skip(str(missing))
    with PostgresCluster.start() as cluster:
        yield cluster


@pytest.fixture
def pg_url(pg_cluster, request):
    """A fresh, empty database on the session's cluster: its SQLAlchemy URL (postgresql+psycopg://)."""
    return pg_cluster.create_database(request.node.name)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """A real Prefect server (a temporary one, on SQLite) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def sandbox():
    from sandbox.server import start_sandbox

    with start_sandbox() as handle:
        yield handle


@pytest.fixture
def portals(sandbox, monkeypatch):
    """The sandbox portals, reset, and Glaneur pointed at them."""
    from glaneur.settings import reset_settings

    for url in sandbox.urls.values():
        httpx.post(f"{url}/_sandbox/reset").raise_for_status()
    monkeypatch.setenv("GLANEUR_PORTAL_URLS", json.dumps(sandbox.urls))
    reset_settings()
    yield sandbox
    reset_settings()
