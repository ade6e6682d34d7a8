"""The Powens sandbox's world: users and tokens, connectors, connections, accounts, a clock, movements.

It behaves as Powens' documentation says (docs.powens.com), including its failures, so that the
client is tested against what the real API does. Like Powens' own sandbox ("Connecteur de test"),
the **login** typed in the webview chooses the scenario:

* ``ok`` (or anything not listed below): connected; the bank then asks a code sent by SMS (``123456``).
* ``decoupled``: the bank asks to approve the login in its app; the webview waits for the approval
  (``POST /_sandbox/connections/approve`` or, for the demo, by itself after ``decoupled_seconds``).
* a documented state name (``wrongpass``, ``passwordExpired``, ``actionNeeded``,
  ``additionalInformationNeeded``, ``SCARequired``, ``webauthRequired``, ``validating``,
  ``rateLimiting``, ``websiteUnavailable``, ``bug``, ``notSupported``): the connection is created
  and stays in that state until a reconnection with the login ``ok``.
* ``bench-N``: one account with about N movements (the benchmark).

The **password** must be ``1234``; anything else is a wrong password, as in the webview of a bank.

"Banque Réservée" is listed with ``restricted: true`` (Powens' ``Connector``: "new connections cannot be
added with this connector"): the webview never offers it and refuses it when chosen anyway.

Movements change day after day: on the clock's day D each account has a few movements dated D,
not booked yet (``coming: true``); on D+1 they are booked (``coming: false``, ``last_update`` moves),
and new ones appear. Nothing is visible before ``first_movements_delay`` seconds after the connection
(the bank's 48 to 72 hours, compressed).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

DOCUMENTED_STATES = (
    "wrongpass", "passwordExpired", "actionNeeded", "additionalInformationNeeded", "SCARequired",
    "webauthRequired", "decoupled", "validating", "rateLimiting", "websiteUnavailable", "bug", "notSupported",
)
PASSWORD = "1234"
SMS_CODE = "123456"
HISTORY_DAYS = 30  # movements dated before the connection that the first sync returns
CODE_TTL = timedelta(minutes=30)

# Documented error messages (webview "Error message" page), shown as ``error_message``.
STATE_MESSAGES = {
    "wrongpass": "Identifiant ou mot de passe incorrect.",
    "passwordExpired": "Votre mot de passe a expiré : changez-le sur le site de votre banque.",
    "actionNeeded": "Une action est requise sur le site de votre banque (conditions générales à accepter).",
    "additionalInformationNeeded": "Un code à usage unique est nécessaire pour terminer l'authentification forte.",
    "SCARequired": "Votre établissement demande une nouvelle étape de validation de vos identifiants.",
    "webauthRequired": "Votre établissement demande une nouvelle étape de validation de vos identifiants.",
    "decoupled": "Vous devez valider l'authentification forte depuis l'application de votre banque.",
    "validating": "Nous attendons la validation de la banque pour synchroniser la connexion.",
    "rateLimiting": "Trop de synchronisations : la banque limite les accès, réessai plus tard.",
    "websiteUnavailable": "Le site de votre banque est indisponible.",
    "bug": "Erreur interne lors de la synchronisation.",
    "notSupported": "Ce type de compte n'est pas pris en charge.",
}


@dataclass(frozen=True)
class SandboxConnector:
    id: int
    name: str
    capabilities: tuple[str, ...]
    restricted: bool = False  # "If true, new connections cannot be added with this connector" (Powens' OpenAPI)

    def offered(self, capabilities: tuple[str, ...]) -> bool:
        """Whether the webview's first step lists it: any of the asked capabilities, and open to new connections."""
        return not self.restricted and any(c in self.capabilities for c in capabilities)

    def payload(self, *, fields: bool = False) -> dict:
        found = {
            "id": self.id,
            "uuid": hashlib.md5(self.name.encode()).hexdigest(),  # noqa: S324 - an identifier, not security
            "name": self.name,
            "capabilities": list(self.capabilities),
            "auth_mechanism": "credentials",
            "hidden": False,
            "restricted": self.restricted,
            "charged": True,
            "code": None,
            "beta": False,
            "color": "0b4c8f",
        }
        if fields:  # documented as an optional ``expand``
            found["fields"] = [
                {"name": "login", "label": "Identifiant", "type": "text", "regex": None},
                {"name": "password", "label": "Mot de passe", "type": "password", "regex": None},
            ]
        return found


CONNECTORS = (
    SandboxConnector(40, "Connecteur de test", ("bank", "document")),
    SandboxConnector(41, "Banque Exemple", ("bank", "transfer")),
    SandboxConnector(42, "Banque Populaire du Test", ("bank",)),
    SandboxConnector(43, "Banque Réservée", ("bank",), restricted=True),  # listed, but no new connection
    SandboxConnector(60, "Énergie Verte", ("document",)),  # a biller
)


@dataclass
class Connection:
    id: int
    id_user: int
    id_connector: int
    login: str
    state: str | None
    created: datetime  # sandbox clock
    created_real: float  # monotonic seconds, for the first-movements delay
    last_update: datetime | None = None
    active: bool = True

    def payload(self) -> dict:
        return {
            "id": self.id,
            "id_user": self.id_user,
            "id_connector": self.id_connector,
            "state": self.state,
            "error": self.state,  # the older name of the field, still sent
            "error_message": STATE_MESSAGES.get(self.state) if self.state else None,
            "last_update": _fmt(self.last_update),
            "created": _fmt(self.created),
            "active": self.active,
            "last_push": None,
            "next_try": None,
        }


@dataclass
class Account:
    id: int
    id_connection: int
    id_user: int
    name: str
    number: str
    iban: str
    kind: str
    disabled: bool
    per_day: int  # movements per day, at most

    def payload(self, balance: str) -> dict:
        return {
            "id": self.id,
            "id_connection": self.id_connection,
            "id_user": self.id_user,
            "number": self.number,
            "webid": self.number,
            "original_name": self.name,
            "name": self.name,
            "balance": float(balance),
            "coming": 0.0,
            "display": True,
            "last_update": None,
            "deleted": None,
            "disabled": None if not self.disabled else "2026-01-01 00:00:00",
            "iban": self.iban,
            "currency": {"id": "EUR", "symbol": "€", "prefix": False, "precision": 2},
            "type": self.kind,
            "usage": "PRIV",
            "bookmarked": 0,
        }


@dataclass
class WebviewSession:
    id: str
    id_user: int
    redirect_uri: str
    state: str | None
    flow: str
    connection_id: int | None = None
    connector_id: int | None = None
    consented: bool = False
    login: str | None = None
    step: str = "bank"  # bank, consent, credentials, sms, decoupled
    capabilities: tuple[str, ...] = ("bank",)  # the connectors the first step lists (connector_capabilities)
    decoupled_since: float | None = None
    approved: bool = False
    errors: int = 0


@dataclass
class PowensWorld:
    client_id: str
    client_secret: str
    rate_limit: int | None = None  # calls a minute; None: unlimited (Powens' sandbox allows 30)
    first_movements_delay: float = 0.0
    decoupled_seconds: float | None = None  # the demo's "approved in the app" after this long
    webhook_url: str | None = None  # where CONNECTION_SYNCED / CONNECTION_DELETED are posted, signed
    webhook_secret: str | None = None
    today: date = field(default_factory=date.today)
    connectors: tuple[SandboxConnector, ...] = CONNECTORS  # a test may turn one restricted (dataclasses.replace)
    lock: threading.RLock = field(default_factory=threading.RLock)
    tokens: dict[str, int] = field(default_factory=dict)
    codes: dict[str, tuple[int, datetime]] = field(default_factory=dict)
    connections: dict[int, Connection] = field(default_factory=dict)
    accounts: dict[int, Account] = field(default_factory=dict)
    webviews: dict[str, WebviewSession] = field(default_factory=dict)
    calls: deque = field(default_factory=deque)
    truncate_next: int = 0
    requests_seen: list[str] = field(default_factory=list)  # paths only: what the client asked
    day_cache: dict = field(default_factory=dict)
    webhooks_sent: list = field(default_factory=list)
    _next_user: int = 1
    _next_connection: int = 100
    _next_account: int = 1000

    # -- clock and limits --

    def now(self) -> datetime:
        return datetime.combine(self.today, datetime.min.time()) + timedelta(hours=12)

    def rate_limited(self) -> float | None:
        """Seconds to wait when over ``rate_limit`` calls in the last minute, else None (and the call counts)."""
        if not self.rate_limit:
            return None
        with self.lock:
            now = time.monotonic()
            while self.calls and now - self.calls[0] > 60:
                self.calls.popleft()
            if len(self.calls) >= self.rate_limit:
                return max(1.0, 60 - (now - self.calls[0]))
            self.calls.append(now)
            return None

    # -- users and codes --

    def new_user(self) -> tuple[str, int]:
        with self.lock:
            user = self._next_user
            self._next_user += 1
            token = secrets.token_urlsafe(32)
            self.tokens[token] = user
            return token, user

    def user_of(self, token: str | None) -> int | None:
        return self.tokens.get(token or "")

    def revoke_user(self, user: int) -> None:
        with self.lock:
            for token in [t for t, u in self.tokens.items() if u == user]:
                del self.tokens[token]

    def delete_user(self, user: int) -> None:
        """``DELETE /users/me``: the user's connections (and their accounts) and tokens are gone."""
        for connection_id in [c.id for c in self.connections.values() if c.id_user == user]:
            self.delete_connection(connection_id)
        self.revoke_user(user)

    def users(self) -> set[int]:
        """The users that still exist (have a token)."""
        return set(self.tokens.values())

    def new_code(self, user: int) -> str:
        code = secrets.token_urlsafe(24)
        self.codes[code] = (user, datetime.now() + CODE_TTL)
        return code

    def take_code(self, code: str) -> int | None:
        """A code is single-use (documented ``access: "single"``)."""
        with self.lock:
            found = self.codes.pop(code, None)
        if found is None or found[1] < datetime.now():
            return None
        return found[0]

    # -- connections and accounts --

    def create_connection(self, user: int, connector_id: int, login: str) -> Connection:
        with self.lock:
            connection_id = self._next_connection
            self._next_connection += 1
            state = login if login in DOCUMENTED_STATES and login != "decoupled" else None
            connection = Connection(connection_id, user, connector_id, login, state, self.now(), time.monotonic())
            self.connections[connection_id] = connection
            per_day = 3
            if login.startswith("bench-"):
                try:
                    per_day = max(1, int(login.removeprefix("bench-")) // (HISTORY_DAYS + 1))
                except ValueError:
                    per_day = 3
            connector = self.connector(connector_id)
            if connector is not None and "bank" not in connector.capabilities:  # a biller: documents, no account
                connection.last_update = self.now() if state is None else None
                return connection
            self._add_account(connection, "Compte courant", "checking", disabled=False, per_day=per_day)
            if not login.startswith("bench-"):
                self._add_account(connection, "Livret A", "savings", disabled=True, per_day=1)
            if state is None:
                connection.last_update = self.now()
            return connection

    def connector(self, connector_id: int | None) -> SandboxConnector | None:
        return next((c for c in self.connectors if c.id == connector_id), None)

    def _add_account(self, connection: Connection, name: str, kind: str, *, disabled: bool, per_day: int) -> None:
        account_id = self._next_account
        self._next_account += 1
        number = f"{connection.id:05d}{account_id:06d}"
        self.accounts[account_id] = Account(account_id, connection.id, connection.id_user, name, number,
                                            _iban(number), kind, disabled, per_day)

    def reconnected(self, connection: Connection) -> None:
        connection.state = None
        connection.login = "ok"
        connection.last_update = self.now()

    def sync(self, connection: Connection) -> None:
        """A synchronisation: a connection in an error state stays in it; otherwise ``last_update`` moves."""
        if connection.state is None:
            connection.last_update = self.now()
            self.send_webhook("CONNECTION_SYNCED", {"connection": connection.payload()})

    def send_webhook(self, event: str, payload: dict) -> None:
        """POST a signed webhook (``BI-Signature``: base64 HMAC-SHA256 of METHOD.PATH.DATE.BODY) in the background."""
        if not self.webhook_url or not self.webhook_secret:
            return
        import base64
        import hmac
        import json
        import threading
        from urllib.parse import urlsplit

        import httpx

        body = json.dumps(payload).encode()
        date = datetime.now().astimezone().isoformat()
        path = urlsplit(self.webhook_url).path
        message = f"POST.{path}.{date}.".encode() + body
        signature = base64.b64encode(hmac.new(self.webhook_secret.encode(), message, hashlib.sha256).digest()).decode()
        headers = {"BI-Signature": signature, "BI-Signature-Date": date, "BI-Event": event,
                   "Content-Type": "application/json"}

        def post() -> None:
            try:
                self.webhooks_sent.append((event, httpx.post(self.webhook_url, content=body, headers=headers,
                                                             timeout=30).status_code))
            except httpx.HTTPError as error:
                self.webhooks_sent.append((event, type(error).__name__))

        threading.Thread(target=post, daemon=True).start()

    def delete_connection(self, connection_id: int) -> None:
        with self.lock:
            self.connections.pop(connection_id, None)
            for account_id in [a.id for a in self.accounts.values() if a.id_connection == connection_id]:
                del self.accounts[account_id]

    # -- kept between runs (the demo) --

    def save(self, path) -> None:
        """Write the users, tokens, connections and accounts to ``path`` (JSON), as Powens keeps them between days.

        The demo's Powens runs in the demo's process: without this, a second ``make demo`` would meet a Powens that
        forgot the connection made by the first. Webview sessions, codes and the clock are not kept.
        """
        import json
        from dataclasses import asdict
        from pathlib import Path

        def connection(c: Connection) -> dict:
            return {**asdict(c), "created": c.created.isoformat(), "created_real": 0.0,
                    "last_update": c.last_update.isoformat() if c.last_update else None}

        with self.lock:
            data = {"tokens": self.tokens, "connections": [connection(c) for c in self.connections.values()],
                    "accounts": [asdict(a) for a in self.accounts.values()],
                    "next": [self._next_user, self._next_connection, self._next_account]}
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(".tmp")
        temporary.write_text(json.dumps(data))
        temporary.replace(target)

    def restore(self, path) -> bool:
        """Read back what :meth:`save` wrote; False (nothing changed) when there is no such file."""
        import json
        from pathlib import Path

        source = Path(path)
        if not source.is_file():
            return False
        data = json.loads(source.read_text())
        with self.lock:
            self.tokens = {token: int(user) for token, user in data["tokens"].items()}
            self.connections = {}
            for item in data["connections"]:
                item["created"] = datetime.fromisoformat(item["created"])
                item["last_update"] = datetime.fromisoformat(item["last_update"]) if item["last_update"] else None
                item["created_real"] = time.monotonic() - self.first_movements_delay  # visible at once
                self.connections[item["id"]] = Connection(**item)
            self.accounts = {item["id"]: Account(**item) for item in data["accounts"]}
            self._next_user, self._next_connection, self._next_account = data["next"]
            self.day_cache.clear()
        return True

    # -- movements --

    def movements_visible(self, connection: Connection) -> bool:
        return time.monotonic() - connection.created_real >= self.first_movements_delay

    def transactions(self, user: int, account_id: int | None = None) -> list[dict]:
        """Every transaction of ``user``'s enabled accounts as of the clock's day, newest first."""
        found: list[dict] = []
        for account in list(self.accounts.values()):
            if account.id_user != user or account.disabled or (account_id and account.id != account_id):
                continue
            connection = self.connections.get(account.id_connection)
            if connection is None or connection.state is not None or not self.movements_visible(connection):
                continue
            first = connection.created.date() - timedelta(days=HISTORY_DAYS)
            day = self.today
            while day >= first:
                found.extend(self._day_movements(account, day))
                day -= timedelta(days=1)
        return found

    def balance(self, account: Account) -> str:
        connection = self.connections.get(account.id_connection)
        total = 1500 * 100
        if connection is not None and self.movements_visible(connection):
            for item in self.transactions(account.id_user, account.id):
                total += round(item["value"] * 100)
        return f"{total / 100:.2f}"

    def _day_movements(self, account: Account, day: date) -> list[dict]:
        """The movements of ``account`` dated ``day``, as seen on the clock's day (computed once per clock day)."""
        key = (account.id, day, self.today)
        found = self.day_cache.get(key)
        if found is None:
            found = self.day_cache[key] = self._compute_day(account, day)
        return found

    def _compute_day(self, account: Account, day: date) -> list[dict]:
        seed = int(hashlib.sha256(f"{account.id}:{day.isoformat()}".encode()).hexdigest()[:8], 16)
        count = 1 + seed % account.per_day if account.per_day > 1 else 1
        if account.per_day > 3:
            count = account.per_day
        booked = day < self.today  # movements of the clock's day are not booked yet
        items = []
        for k in range(count):
            h = int(hashlib.sha256(f"{seed}:{k}".encode()).hexdigest()[:12], 16)
            cents = (h % 40000) + 100
            income = h % 5 == 0
            value = cents / 100 if income else -cents / 100
            label = _LABELS[h % len(_LABELS)]
            updated = datetime.combine(day + timedelta(days=1 if booked else 0), datetime.min.time()) + timedelta(hours=8)
            items.append({
                "id": (account.id * 100_000 + day.toordinal() - 730_000) * 10_000 + k,  # unique for up to 10,000 a day
                "id_account": account.id,
                "application_date": day.isoformat(),
                "date": day.isoformat(),
                "rdate": day.isoformat(),
                "vdate": (day + timedelta(days=1)).isoformat(),
                "bdate": day.isoformat() if booked else None,
                "datetime": None,
                "value": value,
                "gross_value": value,
                "type": "transfer" if income else ("card" if h % 3 else "withdrawal"),
                "original_wording": f"{label.upper()} {day:%d/%m} REF{h % 100000:05d}",
                "simplified_wording": label,
                "wording": label,
                "categories": [],
                "date_scraped": _fmt(updated),
                "coming": not booked,
                "active": True,
                "comment": None,
                "last_update": _fmt(updated),
                "deleted": None,
                "original_value": None,
                "original_currency": None,
                "commission": None,
                "card": None,
                "counterparty": None,
            })
        return items


def biller_pdf(biller: str, number: str, issued: date, amount: str, subscriber: str) -> bytes:
    """A one-page PDF invoice of a biller (reportlab, ``invariant=1``: the same invoice, the same bytes)."""
    from io import BytesIO

    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen.canvas import Canvas

    buffer = BytesIO()
    canvas = Canvas(buffer, pagesize=A4, invariant=1)
    canvas.setTitle(f"Facture {number}")
    canvas.setAuthor(biller)
    canvas.setFont("Helvetica-Bold", 16)
    canvas.drawString(60, 780, biller)
    canvas.setFont("Helvetica", 11)
    for i, line in enumerate((f"Facture n° {number}", f"Date : {issued:%d/%m/%Y}", f"Contrat : {subscriber}",
                              f"Montant TTC : {amount} EUR", "Document fourni par POWENS (sandbox)")):
        canvas.drawString(60, 740 - 18 * i, line)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


BILLER_MONTHS = 3  # documents of the three months before the clock's, and the clock's own from its 5th


def biller_customer(login: str) -> int:
    """The biller's customer number of a login: five digits, stable."""
    return 10_000 + zlib.crc32(login.encode()) % 90_000


def biller_documents(world: PowensWorld, connection: Connection) -> tuple[dict, list[dict]]:
    """A biller connection's one subscription and its monthly documents, as of the clock's day.

    Ids are the connection's (Powens numbers what it syncs); the customer, the invoice numbers, amounts and
    PDFs are the biller's, the same whichever connection reads them (a login connected again)."""
    connector = world.connector(connection.id_connector)
    customer = biller_customer(connection.login)
    subscription = {"id": connection.id * 10 + 1, "id_connection": connection.id, "id_user": connection.id_user,
                    "label": "Contrat électricité", "subscriber": f"CLIENT-{customer}", "number": None,
                    "validity": None, "renewdate": None, "currency": {"id": "EUR"}}
    documents = []
    year, month = world.today.year, world.today.month
    for back in range(BILLER_MONTHS, -1, -1):
        y, m = (year, month - back) if month > back else (year - 1, month - back + 12)
        issued = date(y, m, 5)
        if issued > world.today:
            continue
        document_id = subscription["id"] * 10_000 + y % 100 * 100 + m
        amount = f"{60 + (customer * 100 + y % 100 * 12 + m) % 9000 / 100:.2f}"
        documents.append({
            "id": document_id, "id_subscription": subscription["id"], "id_type": 1, "type": "bill",
            "name": f"Facture {connector.name} {m:02d}/{y}", "date": issued.isoformat(),
            "duedate": (issued + timedelta(days=15)).isoformat(), "number": f"EV-{customer}-{y}{m:02d}",
            "total_amount": float(amount), "untaxed_amount": None, "vat": None, "currency": {"id": "EUR"},
            "income": False, "url": f"/2.0/users/me/documents/{document_id}/file", "readonly": True,
            "_biller": connector.name, "_subscriber": subscription["subscriber"], "_amount": amount,
        })
    return subscription, documents


_LABELS = ("Boulangerie Martin", "Loyer bureau", "Virement client Durand", "Carburant Total", "Fournitures Dupont",
           "Abonnement téléphone", "Frais bancaires", "Virement client Petit", "URSSAF", "Restaurant Le Midi")


def _fmt(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else None


def _iban(number: str) -> str:
    """A French IBAN with a valid checksum (bank 30004, branch 00001, the account number, key 00)."""
    bban = f"3000400001{number[-11:]:0>11}00"
    numeric = "".join(str(int(c, 36)) for c in bban + "FR00")
    check = 98 - int(numeric) % 97
    return f"FR{check:02d}{bban}"
