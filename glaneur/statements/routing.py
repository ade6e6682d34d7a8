"""Statement intake and routing for accounting firms (Prefect-free; the flow calls these steps).

Intake: a statement file is kept in storage exactly as received, whatever it holds, then parsed and
split per account; each statement is recorded once (by its fingerprint, whatever file carried it)
and its own content filed under the firm's prefix. A file that is not a statement is recorded as
rejected with the reason: nothing is lost, nothing is routed from it.

Routing (``seeds/per-iban-statement-connectors-faq.md``): a statement of an IBAN that is active
(mandate approved) and attached to a connector the firm has associated goes to that partner, and
is not in the firm's global statements file; any other known IBAN's statement goes into the global
file of the day it is routed; an unknown IBAN's statement is kept aside and reported until the IBAN
is added. A partner delivery counts once the partner acknowledged it (its receipt is recorded);
until then the statement may still change route (its IBAN was detached), and the delivery is
retried on every run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from cryptography.fernet import InvalidToken
from sqlalchemy import func
from sqlmodel import Session, col, or_, select

from glaneur.errors import ConfigurationError, GlaneurError, SecretUnreadable, UsageError
from glaneur.statements.firm import firm_connectors, require_firm
from glaneur.models import (
    ClientIban,
    DeliveryState,
    Organization,
    PartnerConnector,
    Statement,
    StatementFile,
    StatementFileState,
    StatementRoute,
    StatementSource,
    utcnow,
)
from glaneur.statements import ParsedStatement, StatementFileError, parse_statement_file
from glaneur.statements.model import StatementWarning
from glaneur.statements.parse import continuity_warnings
from glaneur.storage import Storage, safe_part
from glaneur.vault import Vault

EXTENSIONS = {"mt940": "sta"}  # CAMT files are XML
CONTENT_TYPES = {"sta": "text/plain", "xml": "application/xml"}


def extension(fmt: str) -> str:
    return EXTENSIONS.get(fmt, "xml")


def content_type(fmt: str) -> str:
    return CONTENT_TYPES[extension(fmt)]


# -- secrets ----------------------------------------------------------------------------------------


class UnreadableSecret(SecretUnreadable):
    """One partner's signing secret or one source's token cannot be read from the vault (damaged entry,
    key changed): that partner or source alone stops, with what to do; the others go on."""

    @property
    def user_message(self) -> str:
        return self.detail  # says what to do for this partner or source, not the channels' advice


# What the vault raises for an entry it cannot give back: a ciphertext it cannot decrypt (a damaged entry, or
# another key), an entry gone, or its own typed error. Any of them stops only the partner or source concerned.
_VAULT_FAILURES = (GlaneurError, ConfigurationError, LookupError, InvalidToken, UnicodeDecodeError)


def partner_secret(session: Session, partner: PartnerConnector) -> str | None:
    """The partner's signing secret, or :class:`UnreadableSecret` with what the platform team must do."""
    return _vault_secret(
        session,
        partner.secret_ref,
        f"The signing secret of partner '{partner.slug}' cannot be read from Glaneur's vault (the entry is "
        "damaged or was encrypted with another vault key), so nothing was sent to it; its statements wait. "
        f"Enter its secret again: glaneur partner update {partner.slug} --new-secret. "
        "Other partners are not affected.",
    )


def source_token(session: Session, source: StatementSource, org: Organization) -> str | None:
    """The statement API's token, or :class:`UnreadableSecret` with what the firm's administrator must do."""
    return _vault_secret(
        session,
        source.token_ref,
        f"The API token of statement source '{source.slug}' cannot be read from Glaneur's vault (the entry is "
        "damaged or was encrypted with another vault key), so this source was not read; nothing is lost, its "
        f"files are taken on the first run after the fix. Enter the token again: glaneur firm source-token "
        f"{org.slug} {source.slug}. Other sources are not affected.",
    )


def _vault_secret(session: Session, ref: int | None, unreadable: str) -> str | None:
    """The vault entry ``ref`` in clear (None without one), or :class:`UnreadableSecret` saying ``unreadable``."""
    if ref is None:
        return None
    try:
        return Vault(session).get(ref)
    except _VAULT_FAILURES as error:
        raise UnreadableSecret(unreadable) from _quiet(error)


def _quiet(error: BaseException) -> BaseException | None:
    """Keep the vault's own message as the cause (it names the entry, never a secret); drop a bare crypto error."""
    return None if isinstance(error, InvalidToken) else error


# -- keys -------------------------------------------------------------------------------------------


def received_key(org: Organization, sha256: str, name: str, when: date) -> str:
    return f"{safe_part(org.slug)}/statements/received/{when:%Y/%m}/{sha256[:16]}_{safe_part(name)}"


def statement_key(org: Organization, parsed: ParsedStatement) -> str:
    account = safe_part(parsed.iban or parsed.account)
    day = parsed.period_end or parsed.period_start
    folder = f"{day:%Y/%m}" if day else "undated"
    stem = f"{day.isoformat() if day else 'undated'}_{parsed.sha256[:12]}"
    return f"{safe_part(org.slug)}/statements/accounts/{account}/{folder}/{stem}.{extension(parsed.format)}"


def partner_key(partner: PartnerConnector, org: Organization, statement: Statement) -> str:
    """Under the partner's own prefix, so that each production tool reads one folder."""
    name = statement.storage_key.rsplit("/", 1)[-1]
    account = safe_part(statement.iban or statement.account)
    return f"partners/{safe_part(partner.slug)}/{safe_part(org.slug)}/{account}/{name}"


def fingerprint(parsed: ParsedStatement) -> str:
    """What makes two statements the same: the account, its period end, balances and each entry (value date,
    amount, the bank's reference). Two different statements of one account and day with the same balances and
    entry count differ by their entries. Statement numbers and period starts are left out because formats and
    envelopes number and date them differently."""
    entries = sorted(f"{m.day}|{m.amount}|{' '.join(m.reference.split())}" for m in parsed.movements)
    return _digest(*_totals(parsed), *entries)


def money_key(parsed: ParsedStatement) -> str:
    """The same without dates and references of entries: what a CAMT.053 and an MT940 of one statement share
    (banks often send a firm both; each format has its own references)."""
    return _digest(*_totals(parsed), *sorted(str(m.amount) for m in parsed.movements))


def legacy_fingerprint(parsed: ParsedStatement) -> str:
    """The fingerprint of statements recorded before entries counted (no money key): they are not taken twice."""
    return _digest(*_totals(parsed))


def _totals(parsed: ParsedStatement) -> tuple[str, ...]:
    return (parsed.iban or parsed.account, parsed.currency, str(parsed.period_end), str(parsed.opening_balance),
            str(parsed.closing_balance), str(parsed.entries))


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _family(fmt: str) -> str:
    return "mt940" if fmt == "mt940" else "camt"


def already_had(session: Session, org: Organization, parsed: ParsedStatement) -> bool:
    """Recorded before: the same statement (fingerprint), or the same one in the other format (money key)."""
    if session.exec(
        select(Statement.id).where(Statement.organization_id == org.id, Statement.fingerprint == fingerprint(parsed))
    ).first() is not None:
        return True
    formats = session.exec(
        select(Statement.format).where(Statement.organization_id == org.id, Statement.money_key == money_key(parsed))
    ).all()
    if any(_family(fmt) != _family(parsed.format) for fmt in formats):
        return True
    return session.exec(
        select(Statement.id).where(Statement.organization_id == org.id, col(Statement.money_key).is_(None),
                                   Statement.fingerprint == legacy_fingerprint(parsed))
    ).first() is not None


def continuity(session: Session, org: Organization, parsed: ParsedStatement) -> list[StatementWarning]:
    """Gap or overlap with the account's previous statement already recorded (opening balance = last closing)."""
    if parsed.period_end is None:
        return []
    account = (Statement.iban == parsed.iban) if parsed.iban else (Statement.account == parsed.account)
    previous = session.exec(
        select(Statement).where(Statement.organization_id == org.id, account, Statement.currency == parsed.currency,
                                col(Statement.period_end) <= parsed.period_end)
        .order_by(col(Statement.period_end).desc(), col(Statement.id).desc())
    ).first()
    if previous is None or not previous.closing_balance:
        return []
    return continuity_warnings(Decimal(previous.closing_balance), previous.period_end, parsed)


def warnings_of(statement: Statement) -> list[dict[str, str]]:
    return json.loads(statement.warnings or "[]")


# -- intake -----------------------------------------------------------------------------------------


@dataclass
class IntakeResult:
    """What became of one received file."""

    name: str
    sha256: str
    duplicate: bool = False  # the same file was already recorded
    rejected_reason: str = ""
    rejected_message: str = ""
    new_statements: list[int] = field(default_factory=list)  # Statement ids
    already_had: int = 0
    file_id: int | None = None

    @property
    def rejected(self) -> bool:
        return bool(self.rejected_reason)


def record_file(
    session: Session,
    storage: Storage,
    org: Organization,
    name: str,
    data: bytes,
    *,
    source: StatementSource | None = None,
    max_bytes: int,
) -> IntakeResult:
    """Keep the file as received, parse it, record each new statement. Idempotent per file."""
    sha256 = hashlib.sha256(data).hexdigest()
    result = IntakeResult(name=name, sha256=sha256)
    now = utcnow()
    existing = session.exec(
        select(StatementFile).where(
            StatementFile.organization_id == org.id,
            StatementFile.sha256 == sha256,
            StatementFile.state != StatementFileState.DUPLICATE,
        )
    ).first()
    if existing is not None:
        # Noted (an inbox must not offer it again), never parsed or stored twice.
        duplicate = StatementFile(
            organization_id=org.id, source_id=source.id if source is not None else None, source_name=name,
            format=existing.format, sha256=sha256, size=len(data), storage_key=existing.storage_key,
            state=StatementFileState.DUPLICATE, received_at=now,
        )
        session.add(duplicate)
        session.flush()
        result.duplicate = True
        result.file_id = duplicate.id
        return result
    try:
        statements = parse_statement_file(data, max_bytes=max_bytes)
        fmt = statements[0].format if statements else None
        if not statements:
            raise StatementFileError("invalid_statement", "the file holds no statement: ask the bank for it again.")
    except StatementFileError as error:
        result.rejected_reason, result.rejected_message = error.reason, str(error)
        statements, fmt = [], None
    # Kept as received before anything is recorded: a rejected file stays readable by a person.
    raw_key = received_key(org, sha256, name, now.date())
    storage.put(raw_key, data, metadata={"firm": org.slug, "name": name, "state": "rejected" if result.rejected
                                         else "parsed"}, content_type="application/octet-stream")
    record = StatementFile(
        organization_id=org.id,
        source_id=source.id if source is not None else None,
        source_name=name,
        format=fmt,
        sha256=sha256,
        size=len(data),
        storage_key=raw_key,
        state=StatementFileState.REJECTED if result.rejected else StatementFileState.PARSED,
        error_reason=result.rejected_reason,
        error_message=result.rejected_message,
        statement_count=len(statements),
        received_at=now,
    )
    session.add(record)
    session.flush()
    result.file_id = record.id
    ibans = _client_ibans(session, org)
    for parsed in statements:
        if already_had(session, org, parsed):
            result.already_had += 1
            continue
        parsed = parsed.with_warnings(*continuity(session, org, parsed))
        key = statement_key(org, parsed)
        storage.put(
            key,
            parsed.content,
            metadata={
                "firm": org.slug,
                "account": parsed.iban or parsed.account,
                "period_end": str(parsed.period_end or ""),
                "closing_balance": str(parsed.closing_balance),
                "currency": parsed.currency,
            },
            content_type=content_type(parsed.format),
        )
        client = ibans.get(parsed.iban) if parsed.iban else None
        statement = Statement(
            organization_id=org.id,
            file_id=record.id,
            client_iban_id=client.id if client is not None else None,
            account=parsed.account,
            iban=parsed.iban,
            currency=parsed.currency,
            statement_ref=parsed.statement_id,
            format=parsed.format,
            period_start=parsed.period_start,
            period_end=parsed.period_end,
            opening_balance="" if parsed.opening_balance is None else str(parsed.opening_balance),
            closing_balance=str(parsed.closing_balance),
            entries=parsed.entries,
            sha256=parsed.sha256,
            fingerprint=fingerprint(parsed),
            money_key=money_key(parsed),
            warnings=json.dumps([warning.as_json() for warning in parsed.warnings], ensure_ascii=False),
            storage_key=key,
            received_at=now,
        )
        session.add(statement)
        session.flush()
        result.new_statements.append(statement.id)
    return result


def _client_ibans(session: Session, org: Organization) -> dict[str, ClientIban]:
    rows = session.exec(select(ClientIban).where(ClientIban.organization_id == org.id)).all()
    return {row.iban: row for row in rows}


# -- routing ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    statement_id: int
    route: StatementRoute
    partner_id: int | None = None
    reason: str = ""


def decide(statement: Statement, client: ClientIban | None, associated: set[int], *, hold: bool = False) -> Decision:
    """Where one statement goes, by the FAQ's rules; read with warnings, it waits for review when the firm says so."""
    warnings = warnings_of(statement)
    if hold and warnings and statement.reviewed_at is None:
        codes = ", ".join(w["code"] for w in warnings)
        return Decision(statement.id, StatementRoute.HELD, reason=f"held for review: {codes}")
    if client is None:
        return Decision(statement.id, StatementRoute.ASIDE, reason="unknown IBAN: kept aside until it is added")
    if client.partner_id is None:
        return Decision(statement.id, StatementRoute.GLOBAL, reason="no connector on this IBAN")
    if not client.active:
        return Decision(
            statement.id, StatementRoute.GLOBAL, reason=f"mandate {client.mandate_status.value}: IBAN not active"
        )
    if client.partner_id not in associated:
        return Decision(statement.id, StatementRoute.GLOBAL, reason="connector no longer associated with the firm")
    return Decision(statement.id, StatementRoute.PARTNER, partner_id=client.partner_id, reason="active IBAN")


def route_pending(session: Session, org: Organization | str, day: date) -> list[Decision]:
    """Route every statement not routed for good yet; statements bound for the global file land in ``day``'s.

    For good: in a global file, or acknowledged by a partner. A statement kept aside, or bound for a
    partner that has not acknowledged it, is decided again (its IBAN may have been added or detached).
    """
    org = require_firm(session, org)
    associated = {partner.id for partner in firm_connectors(session, org)}
    ibans = _client_ibans(session, org)
    open_statements = session.exec(
        select(Statement)
        .where(
            Statement.organization_id == org.id,
            or_(
                col(Statement.route).in_([StatementRoute.PENDING, StatementRoute.ASIDE, StatementRoute.HELD]),
                (Statement.route == StatementRoute.PARTNER) & col(Statement.delivery_receipt).is_(None),
            ),
        )
        .order_by(Statement.id)
    ).all()
    decisions = []
    now = utcnow()
    for statement in open_statements:
        client = ibans.get(statement.iban) if statement.iban else None
        statement.client_iban_id = client.id if client is not None else None
        decision = decide(statement, client, associated, hold=org.hold_statements_with_warnings)
        decisions.append(decision)
        changed = (statement.route, statement.partner_id) != (decision.route, decision.partner_id)
        statement.route = decision.route
        statement.partner_id = decision.partner_id
        if changed:
            statement.routed_at = now
        if decision.route == StatementRoute.GLOBAL:
            statement.global_date = day
            statement.delivery_state = None
        elif decision.route == StatementRoute.PARTNER and statement.delivery_state is None:
            statement.delivery_state = DeliveryState.PENDING
        session.add(statement)
    session.flush()
    return decisions


def deliveries_due(session: Session, org: Organization | str) -> Sequence[Statement]:
    """Statements bound for a partner and not delivered yet: not acknowledged, or acknowledged but their copy
    under the partner's prefix not written (storage failed after the receipt)."""
    org = require_firm(session, org)
    return session.exec(
        select(Statement)
        .where(
            Statement.organization_id == org.id,
            Statement.route == StatementRoute.PARTNER,
            or_(col(Statement.delivery_state).is_(None), Statement.delivery_state != DeliveryState.DELIVERED),
        )
        .order_by(Statement.id)
    ).all()


def release(session: Session, org: Organization | str, statement_id: int) -> Statement:
    """A person reviewed a statement held for its warnings: the next routing sends it on."""
    org = require_firm(session, org)
    statement = session.get(Statement, statement_id)
    if statement is None or statement.organization_id != org.id:
        raise UsageError(f"firm '{org.slug}' has no statement #{statement_id}: see `glaneur statements list {org.slug}`.")
    if statement.route != StatementRoute.HELD:
        raise UsageError(f"statement #{statement_id} is not held for review (it is {statement.route.value}).")
    return _saved(session, statement, reviewed_at=utcnow(), route=StatementRoute.PENDING)


def _statement(session: Session, statement_id: int) -> Statement:
    statement = session.get(Statement, statement_id)
    if statement is None:
        raise UsageError(f"unknown statement #{statement_id}.")
    return statement


def _saved(session: Session, statement: Statement, **changes: object) -> Statement:
    for name, value in changes.items():
        setattr(statement, name, value)
    session.add(statement)
    session.flush()
    return statement


def mark_acknowledged(session: Session, statement_id: int, receipt: str) -> Statement:
    statement = _statement(session, statement_id)
    return _saved(session, statement, delivery_receipt=receipt, delivery_attempts=statement.delivery_attempts + 1,
                  last_delivery_error="")


def mark_delivered(session: Session, statement_id: int, key: str) -> Statement:
    # last_delivery_error cleared: a copy that failed before is written now
    return _saved(session, _statement(session, statement_id), delivery_key=key, delivery_state=DeliveryState.DELIVERED,
                  delivered_at=utcnow(), last_delivery_error="")


def mark_copy_failed(session: Session, statement_id: int, error: str) -> Statement:
    """The partner acknowledged it, but its copy under the partner's prefix could not be written: the next run
    writes it (and sends nothing again)."""
    return _saved(session, _statement(session, statement_id), delivery_state=DeliveryState.PENDING,
                  last_delivery_error=error[:500])


def mark_not_sent(session: Session, statement_id: int, error: str) -> Statement:
    """Nothing was sent (its partner's secret or its file could not be read): the reason, no attempt counted."""
    return _saved(session, _statement(session, statement_id), last_delivery_error=error[:500])


def mark_delivery_failed(session: Session, statement_id: int, error: str, *, refused: bool) -> Statement:
    statement = _statement(session, statement_id)
    return _saved(session, statement, delivery_attempts=statement.delivery_attempts + 1,
                  delivery_state=DeliveryState.REFUSED if refused else DeliveryState.PENDING,
                  last_delivery_error=error[:500])


# -- the global statements file ("Relevés", action « Télécharger ») ---------------------------------

MANIFEST_COLUMNS = ("file", "iban", "client", "currency", "period_start", "period_end", "opening_balance",
                    "closing_balance", "entries", "sha256")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed: the same day's file is the same bytes, whoever builds it


def global_statements(session: Session, org: Organization | str, day: date) -> list[tuple[Statement, str]]:
    org = require_firm(session, org)
    rows = session.exec(
        select(Statement, ClientIban.client_name)
        .join(ClientIban, col(Statement.client_iban_id) == col(ClientIban.id), isouter=True)
        .where(
            Statement.organization_id == org.id,
            Statement.route == StatementRoute.GLOBAL,
            Statement.global_date == day,
        )
        .order_by(Statement.iban, Statement.period_end, Statement.id)
    ).all()
    return [(statement, client or "") for statement, client in rows]


def global_file(session: Session, storage: Storage, org: Organization | str, day: date) -> tuple[bytes, int]:
    """The firm's global statements file of ``day``: a zip of each statement plus a manifest.csv."""
    org = require_firm(session, org)
    rows = global_statements(session, org, day)
    if not rows:
        raise UsageError(
            f"firm '{org.slug}' has no statement in its global file of {day.isoformat()}: "
            "see `glaneur statements list` for the days that have some."
        )
    manifest = io.StringIO()
    writer = csv.writer(manifest, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for statement, client in rows:
            name = statement.storage_key.rsplit("/", 1)[-1]
            member = f"{safe_part(statement.iban or statement.account)}_{name}"
            _write_member(bundle, member, storage.get(statement.storage_key))
            writer.writerow((member, statement.iban or statement.account, client, statement.currency,
                             statement.period_start or "", statement.period_end or "", statement.opening_balance,
                             statement.closing_balance, statement.entries, statement.sha256))
        _write_member(bundle, "manifest.csv", manifest.getvalue().encode())
    return buffer.getvalue(), len(rows)


def _write_member(bundle: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    bundle.writestr(info, data)


# -- reading ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatementEntry:
    """One line of the statements history: what arrived, and where it went."""

    statement: Statement
    client: str
    partner: str | None

    @property
    def destination(self) -> str:
        s = self.statement
        if s.route == StatementRoute.PARTNER:
            state = s.delivery_state.value if s.delivery_state else "pending"
            if s.delivery_state == DeliveryState.DELIVERED:
                return f"partner {self.partner} (delivered {s.delivered_at:%Y-%m-%d %H:%M}, receipt {s.delivery_receipt})"
            if s.delivery_receipt is not None:
                detail = f": {s.last_delivery_error}" if s.last_delivery_error else ""
                return (f"partner {self.partner} (acknowledged, receipt {s.delivery_receipt}; its copy under the "
                        f"partner's storage prefix is not written yet, the next run writes it{detail})")
            detail = f": {s.last_delivery_error}" if s.last_delivery_error else ""
            return f"partner {self.partner} ({state}, {s.delivery_attempts} attempt(s){detail})"
        if s.route == StatementRoute.GLOBAL:
            return f"global file of {s.global_date}"
        if s.route == StatementRoute.ASIDE:
            return "kept aside: unknown IBAN (add it with `glaneur iban add`)"
        if s.route == StatementRoute.HELD:
            return f"held for review (release it with `glaneur statements release ORG {s.id}`)"
        return "not routed yet"


def statement_history(
    session: Session,
    org: Organization | str,
    *,
    iban: str | None = None,
    route: StatementRoute | None = None,
    limit: int = 200,
) -> list[StatementEntry]:
    org = require_firm(session, org)
    query = (
        select(Statement, ClientIban.client_name, PartnerConnector.slug)
        .join(ClientIban, col(Statement.client_iban_id) == col(ClientIban.id), isouter=True)
        .join(PartnerConnector, col(Statement.partner_id) == col(PartnerConnector.id), isouter=True)
        .where(Statement.organization_id == org.id)
    )
    if iban is not None:
        query = query.where(Statement.iban == iban)
    if route is not None:
        query = query.where(Statement.route == route)
    rows = session.exec(query.order_by(col(Statement.received_at).desc(), col(Statement.id).desc()).limit(limit)).all()
    return [StatementEntry(statement, client or "", partner) for statement, client, partner in rows]


def rejected_files(session: Session, org: Organization | str, *, limit: int = 50) -> Sequence[StatementFile]:
    org = require_firm(session, org)
    return session.exec(
        select(StatementFile)
        .where(StatementFile.organization_id == org.id, StatementFile.state == StatementFileState.REJECTED)
        .order_by(col(StatementFile.received_at).desc())
        .limit(limit)
    ).all()


def count_routed(session: Session, org: Organization | str, route: StatementRoute) -> int:
    org = require_firm(session, org)
    return session.exec(
        select(func.count()).select_from(Statement).where(Statement.organization_id == org.id, Statement.route == route)
    ).one()


def route_counts(decisions: Sequence[Decision]) -> dict[str, int]:
    return dict(Counter(decision.route.value for decision in decisions))


def inbox_files(session: Session, org: Organization, source: StatementSource) -> Sequence[StatementFile]:
    """Files already taken from an inbox (by key): an inbox is read, never emptied, so nothing is lost."""
    return session.exec(
        select(StatementFile).where(StatementFile.organization_id == org.id, StatementFile.source_id == source.id)
    ).all()
