"""Deploy Glaneur on a Prefect server, from a fresh clone, as many times as you like.

    python -m infra.deploy            # or: make deploy

1. creates the ``glaneur`` process work pool unless it exists (``prefect deploy --all`` refuses a
   deployment whose pool is missing);
2. creates or updates each provider's politeness limits (``provider:<slug>``, ``provider-rate:<slug>``,
   see tasks/politeness.py);
3. runs ``prefect --no-prompt deploy --all`` in the project folder with ``GLANEUR_PROJECT_DIR`` set,
   so the workers' pull step finds the code;
4. migrates Glaneur's database (``GLANEUR_DATABASE_URL``): flow runs only check that its schema is
   current ("run glaneur init"), they never migrate it themselves.

The Prefect server is the one the environment names (``PREFECT_API_URL``, ``PREFECT_API_AUTH_STRING``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
WORK_POOL = "glaneur"


async def ensure_work_pool(name: str = WORK_POOL) -> bool:
    """Create the process work pool unless it exists; True when this call created it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    async with get_client() as client:
        try:
            await client.read_work_pool(name)
            return False
        except ObjectNotFound:
            pass
        try:
            await client.create_work_pool(WorkPoolCreate(name=name, type="process"))
        except ObjectAlreadyExists:  # another deploy created it meanwhile
            return False
        return True


async def ensure_limits() -> list[str]:
    from prefect.client.orchestration import get_client

    from tasks.politeness import ensure_provider_limits

    async with get_client() as client:
        return await ensure_provider_limits(client)


def deploy_all(project_dir: Path = PROJECT_DIR, env: dict[str, str] | None = None) -> None:
    environment = {**(env if env is not None else os.environ), "GLANEUR_PROJECT_DIR": str(project_dir)}
    subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
        cwd=project_dir, env=environment, check=True,
    )


def prepare(work_pool: str = WORK_POOL) -> tuple[bool, list[str]]:
    """Steps 1 and 2 (what a server needs before deployments and workers)."""
    async def both():
        return await ensure_work_pool(work_pool), await ensure_limits()

    return asyncio.run(both())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project-dir", type=Path, default=PROJECT_DIR)
    args = parser.parse_args(argv)
    created, limits = prepare()
    print(f"work pool '{WORK_POOL}': {'created' if created else 'already there'}")
    print(f"provider limits written: {len(limits)} ({', '.join(limits[:4])}{', ...' if len(limits) > 4 else ''})")
    deploy_all(args.project_dir.resolve())
    from glaneur.db import migrate

    migrate()
    print("Glaneur's database: schema up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
