"""A local Prefect server for the demo: SQLite under ./var/prefect, left running so the UI stays open.

Started through infra/prefect_server.py (Prefect's own server, with deleted run inputs wiped from SQLite's files).

Reused when one already answers on the port; stopped with ``python -m sandbox.demo --stop``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass(frozen=True)
class LocalPrefect:
    home: Path
    host: str = "127.0.0.1"
    port: int = 4200
    ui: bool = True  # off for a server only tests talk to: it starts sooner

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.home / "server.pid"

    @property
    def marker(self) -> Path:
        """Where the ``glaneur`` command finds this server, so that its runs show in this UI."""
        return self.home / "api-url"

    def environment(self) -> dict[str, str]:
        return {
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_UI_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_API_HOST": self.host,
            "PREFECT_SERVER_API_PORT": str(self.port),
            "PREFECT_SERVER_UI_ENABLED": str(self.ui).lower(),
        }

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def start(self, timeout: float = 180) -> bool:
        """Start the server unless one answers already; True when this call started it."""
        if self.healthy():
            self.marker.write_text(self.api_url)
            return False
        self.home.mkdir(parents=True, exist_ok=True)
        log = open(self.home / "server.log", "ab")  # noqa: SIM115 (the server outlives this process)
        process = subprocess.Popen(
            [sys.executable, "-m", "infra.prefect_server", "start", "--host", self.host, "--port", str(self.port)],
            env={**os.environ, **self.environment()},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.pid_file.write_text(str(process.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"The Prefect server exited at start (code {process.returncode}); see {self.home / 'server.log'}. "
                    f"Is port {self.port} taken? Set GLANEUR_DEMO_PREFECT_PORT."
                )
            if self.healthy():
                self.marker.write_text(self.api_url)
                return True
            time.sleep(0.5)
        raise RuntimeError(f"The Prefect server did not answer within {timeout:.0f} s; see {self.home / 'server.log'}.")

    def stop(self) -> bool:
        self.marker.unlink(missing_ok=True)
        if not self.pid_file.exists():
            return False
        pid = int(self.pid_file.read_text())
        self.pid_file.unlink()
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        return True
