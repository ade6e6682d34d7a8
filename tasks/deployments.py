"""Asking the Prefect server about a deployment, for ``glaneur doctor``, ``channel add`` and the first collection.

Outside the domain (:func:`glaneur.doctor.diagnose` receives :func:`lookup_deployment` as its
``deployments``). It talks to the server through Prefect's own client (``get_client``), with a
short timeout and no retry, and never raises: an unreachable server is an answer too.
"""

from __future__ import annotations

import httpx
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, get_current_settings, temporary_settings

from glaneur.doctor import COLLECT_DEPLOYMENT, DISPATCH_DEPLOYMENT, PREFECT_TIMEOUT_SECONDS, DeploymentLookup

__all__ = ["COLLECT_DEPLOYMENT", "DISPATCH_DEPLOYMENT", "DeploymentLookup", "lookup_deployment"]


def lookup_deployment(name: str, *, timeout: float = PREFECT_TIMEOUT_SECONDS) -> DeploymentLookup:
    """Whether the Prefect server has the deployment ``flow/deployment``, and its online workers; never raises."""
    url = get_current_settings().api.url
    if not url:
        return DeploymentLookup(None, False, error="no Prefect server is configured (PREFECT_API_URL is not set)")
    try:
        with temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: 0}), get_client(
            httpx_settings={"timeout": timeout}, sync_client=True
        ) as client:
            try:
                deployment = client.read_deployment_by_name(name)
            except ObjectNotFound:
                return DeploymentLookup(url, True)
            workers = None
            if deployment.work_pool_name:
                found = client.read_workers_for_work_pool(deployment.work_pool_name)
                workers = sum(1 for worker in found if worker.status == "ONLINE")
    except (httpx.HTTPError, ValueError, RuntimeError) as error:
        return DeploymentLookup(url, False, error=f"{type(error).__name__}: {error}".rstrip(": "))
    return DeploymentLookup(url, True, deployment.model_dump(mode="json"), workers)
