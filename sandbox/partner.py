"""A partner production tool receiving statements (``outil de production``), for tests and the demo.

It does what a partner connector's endpoint does: ``POST /api/statements`` checks the
``X-Glaneur-Signature`` header against its shared secret, over the body and the headers that route the
statement (401 with a JSON reason when the signature is missing, wrong, stale or from the future, or
when the ``Idempotency-Key`` or an ``X-Glaneur-*`` header was changed after signing), requires an ``Idempotency-Key`` (400), keeps each key's
statement once and answers 202 ``{"receipt": "<slug>-<n>"}`` the first time, 200 with the same
receipt when the key comes again. A key sent again with another body is refused (422), a body
over :data:`MAX_BODY_BYTES` too (413), an empty one too (422).

It verifies with :func:`glaneur.statements.delivery.verify`, the one place where the sandbox imports Glaneur:
the signature scheme is the contract, and a partner would use the same few lines.

Control endpoints (``/_sandbox``): ``POST /reset``; ``POST /outage`` (``{"fail_next": N, "status": 503}``:
the next N deliveries fail with that status; ``{"down": true}`` fails all until ``{"down": false}``;
``"retry_after": seconds`` adds that header); ``POST /slow`` (``{"seconds": s}``: each delivery is
stored, then answered s seconds later, as a partner that acknowledges too late);
``GET /received`` (receipt, idempotency key, ``x-glaneur-*`` headers, the signature header as
captured on the wire (no secret: what an eavesdropper would see), sha256, size, times_received); ``GET /received/{receipt}`` (the body as received).

No ``from __future__ import annotations``: FastAPI reads the route signatures at runtime.
"""

import asyncio
import datetime as dt
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, model_validator

from glaneur.statements.delivery import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, SignatureError, verify

SANDBOX_PARTNER_NAMES: dict[str, str] = {"compta-express": "Compta Express", "tenue-plus": "Tenue Plus"}
SANDBOX_PARTNER_SECRETS: dict[str, str] = {
    "compta-express": "sbx-partner-a848741924a7c1bc6fa1efac96cab3006d042fcc2259477a",
    "tenue-plus": "sbx-partner-70027967425dddc51944a7eb5420d285e8c90e05ea18e56c",
}
MAX_BODY_BYTES = 10 * 1024 * 1024
SIGNATURE_TOLERANCE_SECONDS = 300


@dataclass
class Received:
    receipt: str
    idempotency_key: str
    body: bytes
    content_type: str
    headers: dict[str, str]  # the X-Glaneur-* headers, names in lower case as HTTP carries them
    signature: str  # the X-Glaneur-Signature header of the first delivery, as captured on the wire
    first_received_at: dt.datetime
    last_received_at: dt.datetime
    times_received: int = 1

    def as_json(self) -> dict[str, object]:
        return {
            "receipt": self.receipt,
            "idempotency_key": self.idempotency_key,
            "content_type": self.content_type,
            "headers": self.headers,
            "signature": self.signature,
            "sha256": hashlib.sha256(self.body).hexdigest(),
            "size": len(self.body),
            "times_received": self.times_received,
            "first_received_at": self.first_received_at.isoformat(),
            "last_received_at": self.last_received_at.isoformat(),
        }


class PartnerState:
    def __init__(self, slug: str) -> None:
        self.slug = slug
        self.reset()

    def reset(self) -> None:
        self.by_key: dict[str, Received] = {}
        self.fail_next = 0
        self.fail_status = 503
        self.down = False
        self.retry_after: int | None = None
        self.slow_seconds = 0.0

    def next_receipt(self) -> str:
        return f"{self.slug}-{len(self.by_key) + 1}"

    def failing(self) -> bool:
        """Whether this delivery fails (and counts it against ``fail_next``)."""
        if self.down:
            return True
        if self.fail_next > 0:
            self.fail_next -= 1
            return True
        return False


class Outage(BaseModel):
    fail_next: int | None = Field(default=None, ge=0, le=10_000)
    down: bool | None = None
    status: int = Field(default=503, ge=400, le=599)
    retry_after: int | None = Field(default=None, ge=0, le=86_400)

    @model_validator(mode="after")
    def says_something(self) -> "Outage":
        if self.fail_next is None and self.down is None:
            raise ValueError('Give "fail_next" (a number of deliveries) or "down" (true or false).')
        return self


class Slow(BaseModel):
    seconds: float = Field(ge=0, le=120)


def control_router(state: PartnerState) -> APIRouter:
    router = APIRouter(prefix="/_sandbox", tags=["sandbox control"])

    @router.post("/reset")
    async def reset() -> dict[str, str]:
        state.reset()
        return {"reset": state.slug}

    @router.post("/outage")
    async def outage(body: Outage) -> dict[str, object]:
        if body.fail_next is not None:
            state.fail_next = body.fail_next
        if body.down is not None:
            state.down = body.down
        state.fail_status, state.retry_after = body.status, body.retry_after
        return {"fail_next": state.fail_next, "down": state.down, "status": state.fail_status}

    @router.post("/slow")
    async def slow(body: Slow) -> dict[str, float]:
        state.slow_seconds = body.seconds
        return {"seconds": state.slow_seconds}

    @router.get("/received")
    async def received() -> list[dict[str, object]]:
        return [item.as_json() for item in state.by_key.values()]

    @router.get("/received/{receipt}")
    async def received_body(receipt: str) -> Response:
        for item in state.by_key.values():
            if item.receipt == receipt:
                return Response(item.body, media_type=item.content_type or "application/octet-stream")
        raise HTTPException(404, f"No statement with receipt {receipt!r}.")

    return router


def refusal(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"reason": reason}, status)


def create_partner_app(slug: str, secret: str) -> FastAPI:
    """A fresh partner named ``slug`` that shares ``secret`` with Glaneur (state in ``app.state.partner``)."""
    state = PartnerState(slug)
    name = SANDBOX_PARTNER_NAMES.get(slug, slug)
    app = FastAPI(title=f"{name} (sandbox partner)", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.partner = state
    app.include_router(control_router(state))

    @app.middleware("http")
    async def outage(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path.startswith("/api/") and state.failing():
            headers = {"Retry-After": str(state.retry_after)} if state.retry_after is not None else None
            return JSONResponse({"reason": f"{name} is temporarily unavailable."}, state.fail_status, headers=headers)
        return await call_next(request)

    @app.post("/api/statements")
    async def receive(request: Request) -> Response:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return refusal(413, f"A statement is at most {MAX_BODY_BYTES} bytes.")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return refusal(413, f"A statement is at most {MAX_BODY_BYTES} bytes.")
        try:
            verify(
                secret,
                request.headers.get(SIGNATURE_HEADER, ""),
                body,
                headers=request.headers,
                tolerance_seconds=SIGNATURE_TOLERANCE_SECONDS,
            )
        except SignatureError as exc:
            return refusal(401, f"Signature refused: {exc}")
        key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
        if not key:
            return refusal(400, f"The {IDEMPOTENCY_HEADER} header is required.")
        if not body:
            return refusal(422, "The statement is empty.")
        now = dt.datetime.now(dt.UTC)
        known = state.by_key.get(key)
        if known is not None:
            if known.body != body:
                return refusal(422, f"{IDEMPOTENCY_HEADER} {key!r} was already used for another statement.")
            known.times_received += 1
            known.last_received_at = now
            status, receipt = 200, known.receipt
        else:
            receipt = state.next_receipt()
            state.by_key[key] = Received(
                receipt=receipt,
                idempotency_key=key,
                body=body,
                content_type=request.headers.get("content-type", ""),
                headers={
                    k: v
                    for k, v in request.headers.items()
                    if k.startswith("x-glaneur-") and k != SIGNATURE_HEADER.lower()
                },
                signature=request.headers.get(SIGNATURE_HEADER, ""),
                first_received_at=now,
                last_received_at=now,
            )
            status = 202
        if state.slow_seconds:  # stored already: the answer is what comes late
            await asyncio.sleep(state.slow_seconds)
        return JSONResponse({"receipt": receipt}, status)

    return app
