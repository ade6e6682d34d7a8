"""The ``/_sandbox`` control endpoints shared by both portals, and the misbehaviours tests switch on through them.

Tests and the demo reset a portal, add invoices, read the codes sent and make the portal misbehave on
demand (odd downloads, list quirks, rate limiting); what they asked for lives in :class:`Misbehaviour`
until the next reset.

No ``from __future__ import annotations``: FastAPI reads the route signatures at runtime.
"""

import datetime as dt
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import quote

from fastapi import APIRouter, HTTPException
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.convertors import StringConvertor, register_url_convertor

from sandbox.data import PAGE_SIZE, PortalState

RETRY_AFTER_SECONDS = 30


class NewInvoice(BaseModel):
    date: dt.date | None = None
    amount: Decimal | None = Field(default=None, gt=0, le=1_000_000)
    number: str | None = Field(default=None, min_length=1, max_length=200)  # the portal's own numbering
    # What real portals get wrong (see OddInvoice):
    size: int | None = Field(default=None, ge=16, le=4 * 1024**3)
    announce_size: bool = True
    link: str | None = None
    redirect: str | None = None
    shown_amount: str | None = Field(default=None, min_length=1, max_length=500)


class History(BaseModel):
    count: int = Field(ge=1, le=100_000)  # invoices added below the oldest, one a day


class RateLimit(BaseModel):
    enabled: bool = True
    retry_after: int = Field(default=RETRY_AFTER_SECONDS, ge=0)
    requests: int | None = Field(default=None, ge=1)  # refuse only this many requests, then serve again


@dataclass
class OddInvoice:
    """An invoice the portal serves badly, as some do."""

    size: int | None = None  # a PDF this many bytes long, streamed (never built in memory)
    announce_size: bool = True  # with a Content-Length; False: chunked, the size shows only while reading
    link: str | None = None  # the list links there instead of to the portal's own download
    redirect: str | None = None  # the portal's download answers a redirect there
    shown_amount: str | None = None  # the list shows this text where the amount goes (markup, nonsense)


class ListQuirks(BaseModel):
    """How an account's invoice list misbehaves (Papeterie Dupont's paginated list)."""

    loop: bool = False  # the last page's "next" link goes back to page 1
    page_size: int = Field(default=PAGE_SIZE, ge=1, le=100_000)  # rows a page of the list shows
    slow_redirect: float = Field(default=0, ge=0, le=120)  # list pages: a "loading" page whose script moves to a page this slow
    late_render: float = Field(default=0, ge=0, le=120)  # list pages: the table shows this long after the page loaded


@dataclass
class Misbehaviour:
    """What tests asked a portal to get wrong, until the next reset; and the requests it served."""

    invoices: dict[str, OddInvoice] = field(default_factory=dict)  # by invoice number
    lists: dict[str, ListQuirks] = field(default_factory=dict)  # by login
    rate_limit_left: int | None = None  # refusals left (None: every request while rate limited)
    retry_after: int = RETRY_AFTER_SECONDS
    served: list[dict[str, object]] = field(default_factory=list)  # {"at", "path", "status"}: what tests time


_MISBEHAVIOUR: "weakref.WeakKeyDictionary[PortalState, Misbehaviour]" = weakref.WeakKeyDictionary()


def misbehaviour(state: PortalState) -> Misbehaviour:
    return _MISBEHAVIOUR.setdefault(state, Misbehaviour())


class AnyConvertor(StringConvertor):
    """A path segment run that may hold anything, newlines included (Starlette's ``path`` stops at one)."""

    regex = r"[\s\S]+"


register_url_convertor("number", AnyConvertor())


def download_path(prefix: str, number: str) -> str:
    """The portal's own download address of an invoice; numbers like ``FA/001`` are escaped whole."""
    return f"{prefix}/{quote(number, safe='')}/pdf"


def odd_download(state: PortalState, number: str) -> Response | None:
    """The bad answer of an odd invoice's download, or None to serve it normally."""
    odd = misbehaviour(state).invoices.get(number)
    if odd is None:
        return None
    if odd.redirect:
        return RedirectResponse(odd.redirect, 302)
    if odd.size:
        size = odd.size

        def chunks() -> Iterator[bytes]:
            head = b"%PDF-1.4\n% padding\n"
            yield head
            left, block = size - len(head), b"0" * (256 * 1024)
            while left > 0:
                yield block[: min(left, len(block))]
                left -= len(block)

        headers = {"Content-Length": str(size)} if odd.announce_size else {}
        return StreamingResponse(chunks(), media_type="application/pdf", headers=headers)
    return None


class ExpireSessions(BaseModel):
    login: str | None = None  # None: every account's sessions


class SessionLifetime(BaseModel):
    seconds: float = Field(gt=0)


class ClockAdvance(BaseModel):
    seconds: float = Field(ge=0, le=366 * 86400)


def control_router(state: PortalState) -> APIRouter:
    """``/_sandbox``: what tests and the demo use to reset the portal, add invoices and misbehave on demand."""
    router = APIRouter(prefix="/_sandbox", tags=["sandbox control"])

    @router.post("/reset")
    async def reset() -> dict[str, str]:
        state.reset()
        _MISBEHAVIOUR[state] = Misbehaviour()
        return {"reset": state.supplier.slug}

    @router.get("/accounts")
    async def accounts() -> dict[str, object]:
        return {"provider": state.supplier.slug, "name": state.supplier.name, "accounts": state.describe()}

    @router.post("/accounts/{login}/invoices", status_code=201)
    async def add_invoice(login: str, body: NewInvoice | None = None) -> dict[str, str]:
        if login not in state.accounts:
            raise HTTPException(404, f"Unknown account {login!r}; known: {', '.join(state.accounts)}.")
        body = body or NewInvoice()
        if body.number is not None and state.find_invoice(body.number) is not None:
            raise HTTPException(409, f"Invoice {body.number!r} exists already.")
        invoice = state.add_invoice(login, body.date, body.amount, body.number)
        if body.size or body.link or body.redirect or body.shown_amount:
            misbehaviour(state).invoices[invoice.number] = OddInvoice(
                body.size, body.announce_size, body.link, body.redirect, body.shown_amount
            )
        return {"number": invoice.number, "date": invoice.issued.isoformat(), "amount": str(invoice.total_ttc)}

    @router.post("/accounts/{login}/history", status_code=201)
    async def add_history(login: str, body: History) -> dict[str, object]:
        """A long history: ``count`` older invoices at once (10,000 rows for the list's hostile cases)."""
        oldest, newest = state.add_history(known(login), body.count)
        return {"added": body.count, "oldest": oldest.isoformat(), "newest": newest.isoformat()}

    @router.post("/accounts/{login}/list")
    async def list_quirks(login: str, body: ListQuirks) -> dict[str, object]:
        misbehaviour(state).lists[known(login)] = body
        return body.model_dump()

    @router.post("/rate-limit")
    async def rate_limit(body: RateLimit | None = None) -> dict[str, bool]:
        body = body or RateLimit()
        state.rate_limited = body.enabled
        misbehaviour(state).rate_limit_left = body.requests
        misbehaviour(state).retry_after = body.retry_after
        return {"rate_limited": state.rate_limited}

    @router.get("/served")
    async def served() -> list[dict[str, object]]:
        """The portal requests served since the last reset, with their time (``at``, epoch seconds) and status."""
        return misbehaviour(state).served

    def known(login: str) -> str:
        if login not in state.accounts:
            raise HTTPException(404, f"Unknown account {login!r}; known: {', '.join(state.accounts)}.")
        return login

    @router.get("/outbox/{login}")
    async def outbox(login: str) -> list[dict[str, str]]:
        """The latest codes sent by SMS or e-mail to this account (the only place they go), the newest last."""
        return [message.as_json() for message in state.outbox_of(known(login))]

    @router.post("/approve/{login}")
    async def approve(login: str) -> dict[str, int]:
        """The account holder's phone approves the login waiting in the app."""
        approved = state.approve(known(login))
        if not approved:
            raise HTTPException(409, f"No login of {login!r} is waiting for an approval in the app.")
        return {"approved": approved}

    @router.get("/sessions")
    async def sessions() -> dict[str, float]:
        return {"lifetime_seconds": state.session_lifetime.total_seconds()}

    @router.post("/sessions/expire")
    async def expire_sessions(body: ExpireSessions | None = None) -> dict[str, str]:
        """Invalidate the sessions issued so far (one account's, or all): the next visit goes to the login page."""
        login = known(body.login) if body and body.login else None
        state.expire_sessions(login)
        return {"expired": login or "all"}

    @router.post("/sessions/lifetime")
    async def session_lifetime(body: SessionLifetime) -> dict[str, float]:
        """How long a session stays valid (reset puts back 7 days); applies to sessions already open too."""
        state.session_lifetime = dt.timedelta(seconds=body.seconds)
        return {"lifetime_seconds": body.seconds}

    @router.get("/clock")
    async def clock() -> dict[str, object]:
        return {"now": state.now().isoformat(), "offset_seconds": state.clock_offset.total_seconds()}

    @router.post("/clock")
    async def advance_clock(body: ClockAdvance) -> dict[str, object]:
        """Move the portal's time forward: codes and sessions expire, "the next day" without waiting.

        TOTP codes still follow the real time, as the authenticator app on the phone does.
        """
        state.clock_offset += dt.timedelta(seconds=body.seconds)
        return {"now": state.now().isoformat(), "offset_seconds": state.clock_offset.total_seconds()}

    return router
