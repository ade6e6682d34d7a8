"""A throwaway PostgreSQL cluster for tests: its own folder, a free loopback port, gone afterwards.

Uses the server binaries of the machine (``initdb``, ``pg_ctl`` on PATH, else
``/usr/lib/postgresql/*/bin``). PostgreSQL refuses to run as root, and the tests run as root
here and in CI: the cluster then runs as the unprivileged user ``nobody``, in a folder it owns.

    with PostgresCluster.start() as cluster:
        url = cluster.create_database("mytest")  # postgresql+psycopg://postgres@127.0.0.1:PORT/mytest

``tests/conftest.py`` exposes it as the fixtures ``pg_cluster`` (one per test session) and
``pg_url`` (a fresh database per test).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "postgres"
UNPRIVILEGED_USER = "nobody"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine (the tests that need them are skipped)."""


class PostgresFailed(RuntimeError):
    """initdb or pg_ctl failed; the message holds their output."""


def find_binaries() -> Path:
    """The folder holding initdb and pg_ctl."""
    found = shutil.which("initdb")
    if found and (Path(found).resolve().parent / "pg_ctl").exists():
        return Path(found).resolve().parent  # initdb finds postgres next to its real path
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl) on PATH nor in /usr/lib/postgresql/*/bin; "
        "install them (Debian: apt-get install postgresql) to run the PostgreSQL tests"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class PostgresCluster:
    folder: Path
    port: int
    binaries: Path
    _user: pwd.struct_passwd | None
    created: int = 0  # databases created so far (their names stay unique)

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    @classmethod
    @contextlib.contextmanager
    def start(cls, attempts: int = 3) -> Iterator[PostgresCluster]:
        binaries = find_binaries()
        user = pwd.getpwnam(UNPRIVILEGED_USER) if os.geteuid() == 0 else None
        folder = Path(tempfile.mkdtemp(prefix="glaneur-pg-"))
        try:
            if user is not None:
                os.chown(folder, user.pw_uid, user.pw_gid)
            cluster = cls(folder, 0, binaries, user)
            cluster._run("initdb", "-D", str(cluster.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-locale")
            for attempt in range(attempts):  # another process may take the free port before the server does
                cluster.port = free_port()
                try:
                    cluster._run(
                        "pg_ctl", "-D", str(cluster.data), "-l", str(folder / "server.log"), "-w", "-t", "60",
                        "-o", f"-c listen_addresses=127.0.0.1 -p {cluster.port} -k {folder} "
                        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                        "start",
                    )
                    break
                except PostgresFailed:
                    if attempt == attempts - 1:
                        raise PostgresFailed(f"PostgreSQL did not start; its log:\n{cluster.log()}") from None
            try:
                yield cluster
            finally:
                cluster._run("pg_ctl", "-D", str(cluster.data), "-m", "immediate", "-w", "stop", check=False)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def create_database(self, name: str) -> str:
        """A new empty database (``name`` made unique); returns its SQLAlchemy URL (psycopg driver)."""
        import psycopg

        self.created += 1
        name = f"t{self.created}_{re.sub(r'[^a-z0-9_]', '_', name.lower())[:40]}"

        dsn = f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log(self) -> str:
        try:
            return (self.folder / "server.log").read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        extra = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []} if self._user else {}
        done = subprocess.run(
            [str(self.binaries / program), *args],
            cwd=self.folder,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": str(self.folder)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
            check=False,
            **extra,
        )
        if check and done.returncode != 0:
            raise PostgresFailed(f"{program} exited with {done.returncode}:\n{done.stdout[-4000:]}")
        return done
