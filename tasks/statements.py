"""Steps of the statements routing: pull files from the firm's sources, route, deliver, publish the history.

Each step opens its own transaction, so what is done stays done when a later step fails: a file
recorded is not fetched again (the source's cursor moves after each file), a partner's
acknowledgement is recorded before the copy under its prefix is written (a copy that fails is
written by the next run, without sending again). Retries are Prefect's,
and only for what may pass by itself (a source or partner unavailable), never for a refused token
or a partner refusing the delivery.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from zoneinfo import ZoneInfo

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import Task

from connectors.statement_api import RemoteFile, StatementApi
from glaneur.statements import routing
from glaneur.db import session_scope
from glaneur.statements.delivery import (
    FIRM_HEADER,
    IBAN_HEADER,
    STATEMENT_SHA256_HEADER,
    DeliveryError,
    PartnerRefused,
    PartnerUnavailable,
    deliver,
)
from glaneur.errors import GlaneurError, StorageError
from glaneur.statements.firm import require_firm
from glaneur.models import Organization, PartnerConnector, Statement, StatementSource, StatementSourceKind, utcnow
from glaneur.settings import Settings, get_settings
from glaneur.statuses import Status
from glaneur.storage import get_storage
from tasks.history import local_time, md_escape


def is_retried(task: Task, task_run: TaskRun, state: State) -> bool:
    """Retry an unavailable source or partner; never a refusal (wrong token, partner refusing the file)."""
    try:
        state.result()
    except PartnerUnavailable:
        return True
    except GlaneurError as error:
        return error.retried
    except Exception:
        return False
    return False


_step = task(cache_policy=NO_CACHE, retry_condition_fn=is_retried, retry_jitter_factor=0.2)


@dataclass
class PullReport:
    """What one source gave in this run (no content, no secret: it becomes the flow's result)."""

    source: str
    files: int = 0
    duplicates: int = 0
    new_statements: int = 0
    already_had: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (file name, message)
    unread: list[tuple[str, str]] = field(default_factory=list)  # inbox files left for the next run: (name, message)
    error: str = ""
    status: str = Status.OK.value


def _intake(session, storage, org: Organization, source: StatementSource, name: str, data: bytes,
            report: PullReport, settings: Settings) -> None:
    result = routing.record_file(session, storage, org, name, data, source=source,
                                 max_bytes=settings.max_statement_file_bytes)
    report.files += 1
    report.duplicates += int(result.duplicate)
    report.new_statements += len(result.new_statements)
    report.already_had += result.already_had
    if result.rejected:
        report.rejected.append((name, result.rejected_message))


@_step(name="pull-statement-source")
def pull_source(firm: str, source_id: int) -> PullReport:
    """Fetch and record every file the source made available since its cursor, one transaction per file."""
    settings = get_settings()
    storage = get_storage(settings)
    with session_scope() as session:
        source = session.get(StatementSource, source_id)
        org = require_firm(session, firm)
        token = routing.source_token(session, source, org) if source.kind == StatementSourceKind.API else None
        url, cursor, prefix = source.url, source.cursor, source.inbox_prefix
    report = PullReport(source=source.slug)
    if source.kind == StatementSourceKind.INBOX:
        _pull_inbox(org, source_id, prefix or "", storage, report, settings)
        if report.unread:
            report.status = Status.STORAGE_ERROR.value
        _touch(source_id, cursor=None, error=_unread_message(report))
        return report
    with StatementApi(url, token or "", timeout=settings.statement_api_timeout_seconds) as api:
        listing = api.list_files(cursor)
        for remote in listing.files:
            # In cursor order, and the cursor moves past a file only once it is recorded: a file that fails
            # stops this source's pull (retried from there next run) rather than being skipped for good.
            data = api.fetch(remote)
            with session_scope() as session:
                _intake(session, storage, org, session.get(StatementSource, source_id), _name(remote), data,
                        report, settings)
                current = session.get(StatementSource, source_id)
                current.cursor = remote.id
                session.add(current)
    _touch(source_id, cursor=listing.cursor, error="")
    return report


def _pull_inbox(org: Organization, source_id: int, prefix: str, storage, report: PullReport,
                settings: Settings) -> None:
    """Take in each inbox file not taken yet, whatever its name; one that cannot be read stays for the next run
    and never keeps the others out (an inbox has no order to keep, unlike an API's cursor)."""
    with session_scope() as session:
        seen = {f.source_name for f in routing.inbox_files(session, org, session.get(StatementSource, source_id))}
    for key in storage.keys(prefix):
        if key in seen:
            continue
        name = key[len(prefix):] if key.startswith(prefix) else key
        try:
            data = storage.get_listed(key)
            with session_scope() as session:
                _intake(session, storage, org, session.get(StatementSource, source_id), key, data, report, settings)
        except StorageError as error:
            report.unread.append((name, f"not taken in yet: {error.detail or error} It stays in the inbox and is "
                                        "tried again on the next run; the other files were taken in."))


def _unread_message(report: PullReport) -> str:
    if not report.unread:
        return ""
    names = ", ".join(name for name, _ in report.unread[:5])
    more = f" and {len(report.unread) - 5} more" if len(report.unread) > 5 else ""
    return (f"{len(report.unread)} inbox file(s) could not be taken in this run ({names}{more}); they stay in the "
            "inbox and are tried again next run. If this lasts, check the storage settings.")


def _name(remote: RemoteFile) -> str:
    return remote.name if remote.name == remote.id else f"{remote.id}_{remote.name}"


def _touch(source_id: int, *, cursor: str | None, error: str) -> None:
    with session_scope() as session:
        source = session.get(StatementSource, source_id)
        if cursor is not None:
            source.cursor = cursor
        source.last_polled_at = utcnow()
        source.last_error = error
        session.add(source)


def record_source_error(source_id: int, error: str) -> None:
    """The source's last error, in words for the firm's administrator (``glaneur firm sources``)."""
    with session_scope() as session:
        source = session.get(StatementSource, source_id)
        source.last_error = error[:500]
        session.add(source)


@_step(name="route-statements")
def route(firm: str, day: date) -> dict[str, int]:
    with session_scope() as session:
        return routing.route_counts(routing.route_pending(session, firm, day))


@dataclass(frozen=True)
class DeliveryReport:
    statement_id: int
    partner: str
    delivered: bool
    receipt: str = ""
    error: str = ""
    refused: bool = False
    status: str = Status.OK.value
    acknowledged: bool = False  # the partner has it (a receipt), even if its copy under the prefix is not written


@_step(name="deliver-statement")
def deliver_statement(firm: str, statement_id: int) -> DeliveryReport:
    """Send one statement to its partner: HTTP (signed, idempotent) when the partner takes it, then its prefix.

    Each outcome is recorded on the statement before the step ends, so that the history tells it: not sent
    (its partner's secret or its file unreadable), refused, unavailable, acknowledged but not copied, delivered.
    """
    settings = get_settings()
    storage = get_storage(settings)
    with session_scope() as session:
        org = require_firm(session, firm)
        statement = session.get(Statement, statement_id)
        partner = session.get(PartnerConnector, statement.partner_id)
        receipt = statement.delivery_receipt
    try:
        content = storage.get(statement.storage_key)
        secret = None
        if receipt is None and partner.delivery_url:
            with session_scope() as session:
                secret = routing.partner_secret(session, partner)
    except (StorageError, routing.UnreadableSecret) as error:
        message = error.user_message if isinstance(error, routing.UnreadableSecret) else (
            f"Its file could not be read from storage, so nothing was sent: {error.detail or error} "
            "Glaneur retries on the next run; if this lasts, check the storage settings.")
        with session_scope() as session:
            routing.mark_not_sent(session, statement_id, message)
        raise
    if receipt is None:
        if partner.delivery_url:
            try:
                ack = deliver(
                    f"{partner.delivery_url}",
                    secret or "",
                    content,
                    idempotency_key=f"glaneur-{org.slug}-{statement.fingerprint[:40]}",
                    content_type=routing.content_type(statement.format),
                    headers={
                        FIRM_HEADER: org.slug,
                        IBAN_HEADER: statement.iban or statement.account,
                        STATEMENT_SHA256_HEADER: statement.sha256,
                    },
                    timeout=settings.delivery_timeout_seconds,
                )
            except DeliveryError as error:
                with session_scope() as session:
                    routing.mark_delivery_failed(
                        session, statement_id, str(error), refused=isinstance(error, PartnerRefused)
                    )
                raise
            receipt = ack.receipt
        else:
            receipt = "storage"
        with session_scope() as session:  # acknowledged: from now on this statement is the partner's
            routing.mark_acknowledged(session, statement_id, receipt)
    key = routing.partner_key(partner, org, statement)
    try:
        storage.put(key, content, metadata={"firm": org.slug, "iban": statement.iban or statement.account,
                                            "sha256": statement.sha256},
                    content_type=routing.content_type(statement.format))
    except StorageError as error:
        with session_scope() as session:
            routing.mark_copy_failed(
                session, statement_id,
                f"{partner.name} acknowledged it (receipt {receipt}), but its copy under partners/{partner.slug}/ "
                f"could not be written: {error.detail or error} The next run writes it without sending it again; "
                "if this lasts, check the storage settings.",
            )
        raise
    with session_scope() as session:
        routing.mark_delivered(session, statement_id, key)
    return DeliveryReport(statement_id, partner.slug, True, receipt=receipt, acknowledged=True)


def record_delivery_failure(firm: str, statement_id: int, error: BaseException) -> DeliveryReport:
    """What the flow keeps of a delivery that failed (already recorded on the statement by the step, except
    for an unexpected error, recorded here), so that one statement's failure never stops the others."""
    with session_scope() as session:
        statement = session.get(Statement, statement_id)
        partner = session.get(PartnerConnector, statement.partner_id) if statement.partner_id else None
        if not isinstance(error, (DeliveryError, GlaneurError)):
            routing.mark_not_sent(
                session, statement_id,
                f"Glaneur failed unexpectedly ({type(error).__name__}); retried on the next run. The run's log in "
                "the Prefect UI has the details for support.",
            )
        statement = session.get(Statement, statement_id)
        message, receipt = statement.last_delivery_error, statement.delivery_receipt
    if isinstance(error, DeliveryError):
        status = Status.PORTAL_UNAVAILABLE if isinstance(error, PartnerUnavailable) else Status.ACTION_NEEDED
    elif isinstance(error, GlaneurError):
        status = error.status
    else:
        status = Status.INTERNAL_ERROR
    return DeliveryReport(statement_id, partner.slug if partner else "", False, receipt=receipt or "",
                          error=message or str(error), refused=isinstance(error, PartnerRefused),
                          status=status.value, acknowledged=receipt is not None)


def artifact_key(firm: str) -> str:
    return f"statements-{firm}"


def publish_history(firm: str, day: date, pulls: list[PullReport], deliveries: list[DeliveryReport]) -> str:
    with session_scope() as session:
        org = require_firm(session, firm)
        entries = routing.statement_history(session, org, limit=100)
    lines = [
        f"# Relevés: {md_escape(org.name)} ({md_escape(day.isoformat())})",
        "",
        "| source | status | files | duplicates | new statements | already had | rejected | not taken in yet | error |",
        "|---|---|---:|---:|---:|---:|---|---|---|",
    ]
    for pull in pulls:
        rejected = "; ".join(f"{name}: {message}" for name, message in pull.rejected)
        unread = "; ".join(f"{name}: {message}" for name, message in pull.unread)
        lines.append(
            f"| {md_escape(pull.source)} | {md_escape(pull.status)} | {pull.files} | {pull.duplicates} | "
            f"{pull.new_statements} | {pull.already_had} | {md_escape(rejected)} | {md_escape(unread)} | "
            f"{md_escape(pull.error)} |"
        )
    failed = [d for d in deliveries if not d.delivered]
    if failed:
        lines += [
            "",
            "| statement not delivered this run | partner | status | acknowledged | what happened, what to do |",
            "|---:|---|---|---|---|",
        ]
        for delivery in failed:
            acknowledged = f"yes, receipt {delivery.receipt}" if delivery.acknowledged else "no"
            lines.append(
                f"| #{delivery.statement_id} | {md_escape(delivery.partner)} | {md_escape(delivery.status)} | "
                f"{md_escape(acknowledged)} | {md_escape(delivery.error)} |"
            )
    zone = ZoneInfo(get_settings().timezone)
    lines += [
        "",
        f"| received ({md_escape(zone.key)}) | destination | IBAN | client | period | closing | entries |",
        "|---|---|---|---|---|---:|---:|",
    ]
    warned = []
    for entry in entries:
        s = entry.statement
        lines.append(
            f"| {md_escape(local_time(s.received_at, zone))} | {md_escape(entry.destination)} | "
            f"{md_escape(s.iban or s.account)} | {md_escape(entry.client or '-')} | "
            f"{md_escape(f'{s.period_start} → {s.period_end}')} | {md_escape(f'{s.closing_balance} {s.currency}')} | "
            f"{s.entries} |"
        )
        warned += [f"- {md_escape(s.iban or s.account)}, {md_escape(f'{s.period_start} → {s.period_end}')}: "
                   f"{md_escape(w['code'])}: {md_escape(w['message'])}" for w in routing.warnings_of(s)]
    if warned:
        lines += ["", "**Warnings**", "", *warned]
    trouble = [p for p in pulls if p.error or p.rejected or p.unread] + failed
    status = "Needs attention" if trouble else "Routed"
    key = artifact_key(firm)
    create_markdown_artifact(
        key=key, markdown="\n".join(lines),
        description=f"**{status}** · statements of {md_escape(org.name)} · {md_escape(day.isoformat())}",
    )
    return key


def as_dict(report: PullReport | DeliveryReport) -> dict:
    return asdict(report)
