"""The throttling front end both portals sit behind: 429 with ``Retry-After`` while the control flag is on."""

import time
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from sandbox.data import PortalState
from sandbox.portals.controls import misbehaviour

def rate_limiter(
    state: PortalState,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    """While the control flag is on, every portal request answers 429, as a throttling front end does."""

    async def middleware(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path.startswith("/_sandbox"):
            return await call_next(request)
        odd = misbehaviour(state)
        at = time.time()
        if not state.rate_limited:
            response = await call_next(request)
            odd.served.append({"at": at, "path": request.url.path, "status": response.status_code})
            return response
        if odd.rate_limit_left is not None:
            odd.rate_limit_left -= 1
            state.rate_limited = odd.rate_limit_left > 0
        odd.served.append({"at": at, "path": request.url.path, "status": 429})
        headers = {"Retry-After": str(odd.retry_after)}
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "Trop de requêtes, réessayez plus tard."}, 429, headers=headers)
        body = "<h1>Trop de requêtes</h1><p>Merci de patienter avant de réessayer.</p>"
        return HTMLResponse(f"<!doctype html><html lang='fr'><body>{body}</body></html>", 429, headers=headers)

    return middleware
