"""A bank statement API as accounting firms subscribe to (the "statement source"), for tests and the demo.

Each morning the banks' statement files of the previous day become available to the firm:
CAMT.053 (versions 001.02 and 001.08) and MT940, several accounts per file at times. The firm's
tool lists them incrementally and downloads each one:

* ``GET /api/v1/statement-files?after=<cursor>&limit=<n>`` with ``Authorization: Bearer <token>``:
  ``{"files": [{"id", "name", "format", "size", "sha256", "available_at"}], "next_cursor", "has_more"}``,
  oldest first. ``next_cursor`` is the id of the last file listed (the ``after`` given when nothing
  is new): pass it, or the id of any file listed, back as ``after`` to get only the files made
  available after it. 401 without a known token, 400 for an id the firm never had.
* ``GET /api/v1/statement-files/{id}``: the file's bytes (``application/xml`` for CAMT, ``text/plain``
  for MT940); 404 for a file the firm does not have.

The sandbox firm ``cabinet-demo`` (token in :data:`SANDBOX_SOURCE_TOKENS`) receives four files a day,
deterministic per date: a camt.053.001.08 file with two French accounts, a camt.053.001.02 file with
a Belgian account, an MT940 file with a Belgian and a German statement, and a camt.053.001.08 file
of :data:`SANDBOX_UNKNOWN_IBAN`, an account that is not one of the firm's clients. Balances carry
over from one day to the next. The source's "today" starts at :data:`DEFAULT_TODAY` (files of
the day before); moving the clock forward publishes each new day's files.

Control endpoints (``/_sandbox``): ``POST /reset``; ``GET /clock``; ``POST /clock``
(``{"today": "YYYY-MM-DD"}``: days up to that date are published; moving back publishes nothing
and hides nothing); ``POST /outage`` (``{"fail_next": N, "status": 503}``: the next N API requests
fail); ``GET /files`` (every firm's files); ``POST /files`` (``{"firm", "name", "content_base64",
"format"?}``: a raw file, hostile or truncated as a test needs, available at once; the format is
guessed from the content unless given).

No ``from __future__ import annotations``: FastAPI reads the route signatures at runtime.
"""

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import random
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from sandbox.statement_files import BankAccount, Entry, Statement, camt053, mt940

PARIS = ZoneInfo("Europe/Paris")
DEFAULT_TODAY = dt.date(2026, 11, 20)
BALANCE_ANCHOR = dt.date(2026, 1, 1)  # the sandbox accounts open on this day
MAX_CLOCK_JUMP_DAYS = 366
MAX_RAW_FILE_BYTES = 50 * 1024 * 1024
FIRM = "cabinet-demo"

SANDBOX_SOURCE_TOKENS: dict[str, str] = {FIRM: "sbx-src-VQ4VLVUyDdcrNsZKHXedwGYDm6VyQwZP"}

SANDBOX_UNKNOWN_IBAN = "DE54500105176789012345"  # Weber Logistik GmbH: its bank sends its statements, it is no client

FileFormat = Literal["camt053", "mt940", "unknown"]
MEDIA_TYPES: dict[str, str] = {
    "camt053": "application/xml",
    "mt940": "text/plain",
    "unknown": "application/octet-stream",
}

# -- the sandbox's accounts and what happens on them ------------------------------------------------


@dataclass(frozen=True)
class Movement:
    """A kind of movement an account sees; ``cents`` is a signed range (debits negative)."""

    counterparty: str
    remittance: str  # format fields: {n} a number, {day} the booking day
    cents: tuple[int, int]
    family: str = "RCDT"
    sub_family: str = "ESCT"


@dataclass(frozen=True)
class SandboxAccount:
    account: BankAccount
    anchor_balance: Decimal  # opening balance on BALANCE_ANCHOR
    movements: tuple[Movement, ...]


def _card(counterparty: str, remittance: str, cents: tuple[int, int]) -> Movement:
    return Movement(counterparty, remittance, cents, "CCRD", "POSD")


def _debit(counterparty: str, remittance: str, cents: tuple[int, int], direct: bool = False) -> Movement:
    return Movement(counterparty, remittance, cents, "IDDT" if direct else "ICDT", "ESDD" if direct else "ESCT")


ACCOUNTS: dict[str, SandboxAccount] = {
    a.account.iban: a
    for a in (
        SandboxAccount(
            BankAccount("FR7630004012340001029384732", "BNPAFRPP", "Boulangerie Martin"),
            Decimal("8450.00"),
            (
                _card("Encaissements CB", "Remise carte {n} du {day:%d/%m}", (30_000, 150_000)),
                _debit("Moulins Decollogne", "Facture farine F{n}", (-140_000, -40_000)),
                _debit("EDF", "Prélèvement électricité contrat {n}", (-45_000, -15_000), direct=True),
                Movement("Mairie de Villeurbanne", "Commande galettes des rois {n}", (10_000, 40_000)),
            ),
        ),
        SandboxAccount(
            BankAccount("FR7610278060500002030405077", "CMCIFR2A", "Garage Lefèvre"),
            Decimal("15230.40"),
            (
                Movement("AXA France IARD", "Sinistre {n} réparation carrosserie", (40_000, 280_000)),
                Movement("M. et Mme Rousseau", "Facture atelier {n}", (15_000, 120_000)),
                _debit("Autodistribution", "Pièces détachées F{n}", (-160_000, -30_000)),
                _debit("URSSAF Rhône-Alpes", "Cotisations {day:%m/%Y} réf {n}", (-180_000, -90_000), direct=True),
            ),
        ),
        SandboxAccount(
            BankAccount("BE56001543210988", "GEBABEBB", "Brasserie Van den Bossche"),
            Decimal("6120.75"),
            (
                _card("Bancontact", "Versement terminal {n}", (40_000, 200_000)),
                _debit("AB InBev Belgium", "Facture {n} fûts", (-160_000, -30_000)),
                _debit("Engie Electrabel", "Domiciliation {n}", (-30_000, -9_000), direct=True),
            ),
        ),
        SandboxAccount(
            BankAccount("BE35310123456737", "BBRUBEBB", "Atelier Peeters"),
            Decimal("3980.10"),
            (
                Movement("Bouwbedrijf Janssens", "Factuur {n}", (50_000, 300_000)),
                _debit("Brico Pro", "Materiaal bestelling {n}", (-180_000, -30_000)),
                _debit("RSZ-ONSS", "Sociale bijdragen {n}", (-90_000, -40_000), direct=True),
                _debit("Proximus", "Domiciliëring {n}", (-12_000, -4_000), direct=True),
            ),
        ),
        SandboxAccount(
            BankAccount("DE17370400440211849500", "COBADEFFXXX", "Schreinerei Müller GmbH"),
            Decimal("22410.00"),
            (
                Movement("Küchenstudio Becker", "Rechnung {n}", (80_000, 450_000)),
                _debit("Holzhandel Schmidt KG", "Holzlieferung RE {n}", (-350_000, -100_000)),
                _debit("Stadtwerke Köln", "Lastschrift Strom {n}", (-60_000, -20_000), direct=True),
            ),
        ),
        SandboxAccount(
            BankAccount(SANDBOX_UNKNOWN_IBAN, "INGDDEFFXXX", "Weber Logistik GmbH"),
            Decimal("9870.55"),
            (
                Movement("Spedition Hartmann", "Frachtrechnung {n}", (60_000, 350_000)),
                _debit("Aral AG", "Tankkarte {n}", (-300_000, -120_000), direct=True),
            ),
        ),
    )
}

# The firm's clients (IBAN -> holder): every sandbox account but the unknown one.
SANDBOX_CLIENT_IBANS: dict[str, str] = {
    iban: sandbox.account.owner for iban, sandbox in ACCOUNTS.items() if iban != SANDBOX_UNKNOWN_IBAN
}


@dataclass(frozen=True)
class Lot:
    """One of the files the firm receives each day."""

    number: int
    kind: Literal["camt053.001.08", "camt053.001.02", "mt940"]
    ibans: tuple[str, ...]

    def name(self, day: dt.date) -> str:
        stem = "MT940" if self.kind == "mt940" else "CAMT053"
        return f"{stem}_{day:%Y%m%d}_{self.number:03d}.{'sta' if self.kind == 'mt940' else 'xml'}"


LOTS = (
    Lot(1, "camt053.001.08", ("FR7630004012340001029384732", "FR7610278060500002030405077")),
    Lot(2, "camt053.001.02", ("BE56001543210988",)),
    Lot(3, "mt940", ("BE35310123456737", "DE17370400440211849500")),
    Lot(4, "camt053.001.08", (SANDBOX_UNKNOWN_IBAN,)),
)


_LEDGERS: dict[str, list[tuple[Decimal, tuple[Entry, ...]]]] = {}  # per IBAN, day by day from BALANCE_ANCHOR
_LEDGER_LOCK = threading.Lock()


def day_of(iban: str, day: dt.date) -> tuple[Decimal, tuple[Entry, ...]]:
    """The opening balance and the movements booked on ``day``: the same for the same account and day.

    Balances carry over (an opening balance is the day before's closing one), so the ledger is
    written forward from :data:`BALANCE_ANCHOR`, the draws leaning towards credits when the
    balance runs low and towards debits when it runs high, as a business's treasury does.
    """
    index = (day - BALANCE_ANCHOR).days
    if index < 0:
        raise ValueError(f"The sandbox accounts start on {BALANCE_ANCHOR.isoformat()}.")
    with _LEDGER_LOCK:
        ledger = _LEDGERS.setdefault(iban, [])
        while len(ledger) <= index:
            if ledger:
                previous_opening, previous_entries = ledger[-1]
                opening = previous_opening + sum((e.amount for e in previous_entries), Decimal(0))
            else:
                opening = ACCOUNTS[iban].anchor_balance
            ledger.append((opening, _draw(iban, BALANCE_ANCHOR + dt.timedelta(days=len(ledger)), opening)))
        return ledger[index]


def _draw(iban: str, day: dt.date, opening: Decimal) -> tuple[Entry, ...]:
    sandbox_account = ACCOUNTS[iban]
    credits = [m for m in sandbox_account.movements if m.cents[0] > 0]
    debits = [m for m in sandbox_account.movements if m.cents[0] < 0]
    target = sandbox_account.anchor_balance
    credit_odds = 0.8 if opening < target / 2 else 0.2 if opening > target * 2 else 0.5
    rng = random.Random(f"{iban}/{day.isoformat()}")
    entries = []
    for index in range(rng.randint(1, 4)):
        movement = rng.choice(credits if rng.random() < credit_odds else debits)
        card_takings = movement.family == "CCRD"  # card takings are value-dated the next day
        entries.append(
            Entry(
                amount=Decimal(rng.randint(*movement.cents)) / 100,
                booking_date=day,
                value_date=day + dt.timedelta(days=1) if card_takings else day,
                remittance=movement.remittance.format(n=rng.randint(10_000, 99_999), day=day),
                counterparty=movement.counterparty,
                reference=f"R{day:%y%m%d}{iban[-4:]}{index + 1:02d}",
                family=movement.family,
                sub_family=movement.sub_family,
            )
        )
    return tuple(entries)


def statement_of(iban: str, day: dt.date) -> Statement:
    """The statement of ``day`` for an account, as the bank issues it the next morning."""
    opening, entries = day_of(iban, day)
    return Statement(
        account=ACCOUNTS[iban].account,
        identifier=f"ST{day:%y%m%d}{iban[-6:]}",
        number=day.timetuple().tm_yday,
        day=day,
        created_at=_morning(day + dt.timedelta(days=1), 5, 30),
        opening_balance=opening,
        entries=entries,
    )


def lot_content(lot: Lot, day: dt.date) -> bytes:
    """The bytes of one of the day's files (statements of ``day``)."""
    statements = [statement_of(iban, day) for iban in lot.ibans]
    if lot.kind == "mt940":
        return mt940(statements)
    version = "001.08" if lot.kind == "camt053.001.08" else "001.02"
    created_at = _morning(day + dt.timedelta(days=1), 5, 30)
    return camt053(statements, version=version, message_id=f"GLSBX{day:%Y%m%d}{lot.number:03d}", created_at=created_at)


def _morning(day: dt.date, hour: int, minute: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), PARIS)


def guess_format(content: bytes) -> FileFormat:
    head = content[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<") and b"camt.053" in head:
        return "camt053"
    if head.startswith((b":20:", b"{1:")) or (b"\n:20:" in head and b":25:" in head):
        return "mt940"
    return "unknown"


# -- the source's state ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceFile:
    id: str
    firm: str
    name: str
    format: FileFormat
    content: bytes
    available_at: dt.datetime

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "format": self.format,
            "size": len(self.content),
            "sha256": hashlib.sha256(self.content).hexdigest(),
            "available_at": self.available_at.isoformat(),
        }


class SourceState:
    """The files published so far, in the order they became available, and the misbehaviour asked for."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.today = DEFAULT_TODAY
        self.files: list[SourceFile] = []
        self.last_published_day: dt.date | None = None
        self.raw_count = 0
        self.fail_next = 0
        self.fail_status = 503
        self.set_today(DEFAULT_TODAY)

    def set_today(self, today: dt.date) -> list[SourceFile]:
        """Move the clock; every day not published yet up to ``today`` publishes its files (statements of the day before)."""
        first = today if self.last_published_day is None else self.last_published_day + dt.timedelta(days=1)
        if (today - first).days >= MAX_CLOCK_JUMP_DAYS:
            raise ValueError(f"The clock moves at most {MAX_CLOCK_JUMP_DAYS} days at once.")
        published = []
        day = first
        while day <= today:
            statement_day = day - dt.timedelta(days=1)
            for lot in LOTS:
                name = lot.name(statement_day)
                published.append(
                    self._publish(
                        f"sf-{statement_day:%Y%m%d}-{lot.number}",
                        FIRM,
                        name,
                        lot_content(lot, statement_day),
                        _morning(day, 6, 5 * lot.number),
                    )
                )
            self.last_published_day = day
            day += dt.timedelta(days=1)
        self.today = today
        return published

    def add_raw(self, firm: str, name: str, content: bytes, file_format: FileFormat | None) -> SourceFile:
        self.raw_count += 1
        return self._publish(
            f"sf-raw-{self.raw_count:04d}",
            firm,
            name,
            content,
            _morning(self.today, 6, 0),
            file_format or guess_format(content),
        )

    def _publish(
        self, file_id: str, firm: str, name: str, content: bytes, at: dt.datetime, file_format: FileFormat | None = None
    ) -> SourceFile:
        if self.files and at <= self.files[-1].available_at:  # availability order is publication order
            at = self.files[-1].available_at + dt.timedelta(minutes=1)
        source_file = SourceFile(file_id, firm, name, file_format or guess_format(content), content, at)
        self.files.append(source_file)
        return source_file

    def files_of(self, firm: str) -> list[SourceFile]:
        return [f for f in self.files if f.firm == firm]


def content_disposition(name: str) -> str:
    """An attachment header that survives any file name (quotes, newlines, accents)."""
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "statement"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name[:200], safe='')}"


# -- the app --------------------------------------------------------------------------------------


class RawFile(BaseModel):
    firm: str
    name: str = Field(min_length=1, max_length=1000)
    content_base64: str
    format: FileFormat | None = None


class SourceOutage(BaseModel):
    fail_next: int = Field(ge=0, le=10_000)
    status: int = Field(default=503, ge=400, le=599)


class Clock(BaseModel):
    today: dt.date


def control_router(state: SourceState) -> APIRouter:
    router = APIRouter(prefix="/_sandbox", tags=["sandbox control"])

    @router.post("/reset")
    async def reset() -> dict[str, str]:
        state.reset()
        return {"reset": "statement-source", "today": state.today.isoformat()}

    @router.get("/clock")
    async def clock() -> dict[str, str]:
        return {"today": state.today.isoformat()}

    @router.post("/clock")
    async def set_clock(body: Clock) -> dict[str, object]:
        try:
            published = state.set_today(body.today)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return {"today": state.today.isoformat(), "published": [f.as_json() for f in published]}

    @router.post("/outage")
    async def outage(body: SourceOutage) -> dict[str, int]:
        state.fail_next, state.fail_status = body.fail_next, body.status
        return {"fail_next": state.fail_next, "status": state.fail_status}

    @router.get("/files")
    async def all_files() -> list[dict[str, object]]:
        return [{"firm": f.firm, **f.as_json()} for f in state.files]

    @router.post("/files", status_code=201)
    async def add_file(body: RawFile) -> dict[str, object]:
        if body.firm not in SANDBOX_SOURCE_TOKENS:
            raise HTTPException(404, f"Unknown firm {body.firm!r}; known: {', '.join(SANDBOX_SOURCE_TOKENS)}.")
        try:
            content = base64.b64decode(body.content_base64, validate=True)
        except binascii.Error:
            raise HTTPException(422, "content_base64 is not valid base64.") from None
        if len(content) > MAX_RAW_FILE_BYTES:
            raise HTTPException(413, f"A raw file is at most {MAX_RAW_FILE_BYTES} bytes.")
        return state.add_raw(body.firm, body.name, content, body.format).as_json()

    return router


def create_statement_source_app() -> FastAPI:
    """A fresh statement source with its own state (``app.state.source``)."""
    state = SourceState()
    app = FastAPI(title="Statement source (sandbox)", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.source = state
    app.include_router(control_router(state))

    @app.middleware("http")
    async def outage(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if state.fail_next > 0 and request.url.path.startswith("/api/"):
            state.fail_next -= 1
            return JSONResponse({"detail": "Service temporarily unavailable, try again later."}, state.fail_status)
        return await call_next(request)

    def firm_of(authorization: Annotated[str | None, Header()] = None) -> str:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() == "bearer" and token:
            for firm, known in SANDBOX_SOURCE_TOKENS.items():
                if hmac.compare_digest(token.strip().encode(), known.encode()):
                    return firm
        raise HTTPException(
            401, "Missing or unknown bearer token.", headers={"WWW-Authenticate": 'Bearer realm="statement-files"'}
        )

    Firm = Annotated[str, Depends(firm_of)]

    @app.get("/api/v1/statement-files")
    async def list_files(
        firm: Firm, after: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 100
    ) -> dict[str, object]:
        files = state.files_of(firm)
        if after:
            ids = [f.id for f in files]
            if after not in ids:
                raise HTTPException(
                    400, f"Unknown cursor {after!r}: pass back a next_cursor (a file id) this API gave."
                )
            files = files[ids.index(after) + 1 :]
        page = files[:limit]
        return {
            "files": [f.as_json() for f in page],
            "next_cursor": page[-1].id if page else after,
            "has_more": len(files) > len(page),
        }

    @app.get("/api/v1/statement-files/{file_id}")
    async def download(firm: Firm, file_id: str) -> Response:
        for source_file in state.files_of(firm):
            if source_file.id == file_id:
                return Response(
                    source_file.content,
                    media_type=MEDIA_TYPES[source_file.format],
                    headers={"Content-Disposition": content_disposition(source_file.name)},
                )
        raise HTTPException(404, f"No statement file {file_id!r}.")

    return app
