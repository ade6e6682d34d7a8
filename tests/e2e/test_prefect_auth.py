"""A locked-down Prefect: with the production setting, the API refuses whoever does not authenticate.

Prefect's open-source UI and API have no login of their own; ``PREFECT_SERVER_API_AUTH_STRING``
(server) and ``PREFECT_API_AUTH_STRING`` (workers, CLI) are the setting infra/README.md ships.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from sandbox.prefect_server import LocalPrefect

pytestmark = pytest.mark.slow

AUTH = "glaneur-ops:a-long-random-passphrase-for-the-api"

# `make test` puts Caddy's binary in the virtual environment (scripts/ensure-caddy.sh) when the
# machine has none; in CI its absence is a failure, not a skip: the shipped proxy must be tested.
CADDY = shutil.which("caddy", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def locked_prefect(tmp_path_factory):
    server = LocalPrefect(home=tmp_path_factory.mktemp("prefect-locked"), port=_free_port())
    mp = pytest.MonkeyPatch()
    mp.setenv("PREFECT_SERVER_API_AUTH_STRING", AUTH)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        mp.undo()


def _basic(credentials: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


def test_the_api_refuses_unauthenticated_and_wrong_calls(locked_prefect):
    url = f"{locked_prefect.api_url}/flow_runs/filter"
    assert httpx.post(url, json={}).status_code == 401
    assert httpx.post(url, json={}, headers=_basic("glaneur-ops:guess")).status_code == 401
    assert httpx.post(url, json={}, headers={"Authorization": "Bearer " + AUTH}).status_code == 401
    assert httpx.post(url, json={}, headers=_basic(AUTH)).status_code == 200
    # Probes stay open, so an orchestrator can still check the server is alive.
    assert httpx.get(f"{locked_prefect.api_url}/health").status_code == 200


def test_a_client_holding_the_auth_string_works(locked_prefect):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    async def count_runs() -> int:
        async with get_client() as client:
            return len(await client.read_flow_runs())

    with temporary_settings({PREFECT_API_URL: locked_prefect.api_url, PREFECT_API_AUTH_STRING: AUTH}):
        assert asyncio.run(count_runs()) == 0
    with temporary_settings({PREFECT_API_URL: locked_prefect.api_url, PREFECT_API_AUTH_STRING: "glaneur-ops:guess"}):
        with pytest.raises(httpx.HTTPStatusError) as refused:
            asyncio.run(count_runs())
        assert refused.value.response.status_code == 401


@pytest.mark.skipif(CADDY is None and not os.environ.get("CI"), reason="Caddy is not installed (make caddy)")
def test_the_shipped_reverse_proxy_asks_for_a_login_and_passes_the_same_credentials_to_prefect(
    locked_prefect, tmp_path
):
    user, password = AUTH.split(":", 1)
    hashed = subprocess.run(
        [CADDY or "caddy", "hash-password", "--plaintext", password], capture_output=True, text=True, check=True
    ).stdout.strip()
    port = _free_port()
    environment = {
        **os.environ,
        "HOME": str(tmp_path),  # Caddy keeps its state under $HOME
        "XDG_DATA_HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path),
        "PREFECT_PUBLIC_HOST": f"http://127.0.0.1:{port}",
        "PREFECT_UPSTREAM": f"127.0.0.1:{locked_prefect.port}",
        "PREFECT_OPS_USER": user,
        "PREFECT_OPS_PASSWORD_HASH": hashed,
    }
    caddyfile = Path(__file__).resolve().parents[2] / "infra" / "Caddyfile"
    proxy = subprocess.Popen(
        [CADDY or "caddy", "run", "--config", str(caddyfile), "--adapter", "caddyfile"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/api/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proxy.poll() is None, "Caddy did not start"
            time.sleep(0.2)
        refused = httpx.get(f"{base}/")
        assert refused.status_code == 401 and "Basic" in refused.headers.get("www-authenticate", "")
        assert httpx.post(f"{base}/api/flow_runs/filter", json={}).status_code == 401
        assert httpx.post(f"{base}/api/flow_runs/filter", json={}, headers=_basic(AUTH)).status_code == 200
        assert httpx.get(f"{base}/", headers=_basic(AUTH)).status_code == 200  # the UI itself
    finally:
        proxy.terminate()
        proxy.wait(timeout=20)
