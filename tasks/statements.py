"""Steps of the statements routing: pull files from the firm's sources, route, deliver, publish the history.

Each step opens its own transaction, so what is done stays done when a later step fails: a file
recorded is not fetched again (the source's cursor moves after each file), a partner's
acknowledgement is recorded before the copy under its prefix is written. Retries are Prefect's,
and only for what may pass by itself (a source or partner unavailable), never for a refused token
or a partner refusing the delivery.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import Task

from connectors.statement_api import RemoteFile, StatementApi
from glaneur import routing
from glaneur.db import session_scope
from glaneur.delivery import DeliveryError, PartnerRefused, PartnerUnavailable, deliver
from glaneur.errors import GlaneurError
from glaneur.firm import require_firm
from glaneur.models import Organization, PartnerConnector, Statement, StatementSource, StatementSourceKind, utcnow
from glaneur.settings import Settings, get_settings
from glaneur.storage import get_storage
from glaneur.vault import Vault
from tasks.history import md_escape


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
    error: str = ""


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
        token = Vault(session).get(source.token_ref) if source.kind == StatementSourceKind.API else None
        url, cursor, prefix = source.url, source.cursor, source.inbox_prefix
    report = PullReport(source=source.slug)
    if source.kind == StatementSourceKind.INBOX:
        with session_scope() as session:
            seen = {f.source_name for f in routing.inbox_files(session, org, source)}
        for key in storage.keys(prefix):
            if key in seen:
                continue
            with session_scope() as session:
                _intake(session, storage, org, session.get(StatementSource, source_id), key, storage.get(key),
                        report, settings)
        _touch(source_id, cursor=None, error="")
        return report
    with StatementApi(url, token or "", timeout=settings.statement_api_timeout_seconds) as api:
        listing = api.list_files(cursor)
        for remote in listing.files:
            data = api.fetch(remote)
            with session_scope() as session:
                _intake(session, storage, org, session.get(StatementSource, source_id), _name(remote), data,
                        report, settings)
                current = session.get(StatementSource, source_id)
                current.cursor = remote.id
                session.add(current)
    _touch(source_id, cursor=listing.cursor, error="")
    return report


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


@_step(name="deliver-statement")
def deliver_statement(firm: str, statement_id: int) -> DeliveryReport:
    """Send one statement to its partner: HTTP (signed, idempotent) when the partner takes it, then its prefix."""
    settings = get_settings()
    storage = get_storage(settings)
    with session_scope() as session:
        org = require_firm(session, firm)
        statement = session.get(Statement, statement_id)
        partner = session.get(PartnerConnector, statement.partner_id)
        secret = Vault(session).get(partner.secret_ref) if partner.secret_ref else None
        content = storage.get(statement.storage_key)
        receipt = statement.delivery_receipt
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
                        "X-Glaneur-Firm": org.slug,
                        "X-Glaneur-IBAN": statement.iban or statement.account,
                        "X-Glaneur-Statement-Sha256": statement.sha256,
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
    storage.put(key, content, metadata={"firm": org.slug, "iban": statement.iban or statement.account,
                                        "sha256": statement.sha256},
                content_type=routing.content_type(statement.format))
    with session_scope() as session:
        routing.mark_delivered(session, statement_id, key)
    return DeliveryReport(statement_id, partner.slug, True, receipt=receipt)


def artifact_key(firm: str) -> str:
    return f"statements-{firm}"


@task(name="publish-statements-history", cache_policy=NO_CACHE)
def publish_history(firm: str, day: date, pulls: list[PullReport], deliveries: list[DeliveryReport]) -> str:
    with session_scope() as session:
        org = require_firm(session, firm)
        entries = routing.statement_history(session, org, limit=100)
    lines = [
        f"# Relevés: {md_escape(org.name)} ({md_escape(day.isoformat())})",
        "",
        "| source | files | duplicates | new statements | already had | rejected | error |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for pull in pulls:
        rejected = "; ".join(f"{name}: {message}" for name, message in pull.rejected)
        lines.append(
            f"| {md_escape(pull.source)} | {pull.files} | {pull.duplicates} | {pull.new_statements} | "
            f"{pull.already_had} | {md_escape(rejected)} | {md_escape(pull.error)} |"
        )
    lines += [
        "",
        "| received | IBAN | client | period | closing | entries | destination |",
        "|---|---|---|---|---:|---:|---|",
    ]
    for entry in entries:
        s = entry.statement
        lines.append(
            f"| {md_escape(s.received_at.strftime('%Y-%m-%d %H:%M'))} | {md_escape(s.iban or s.account)} | "
            f"{md_escape(entry.client or '-')} | {md_escape(f'{s.period_start} → {s.period_end}')} | "
            f"{md_escape(f'{s.closing_balance} {s.currency}')} | {s.entries} | {md_escape(entry.destination)} |"
        )
    key = artifact_key(firm)
    create_markdown_artifact(key=key, markdown="\n".join(lines), description=f"Statements routing of {md_escape(org.name)}")
    return key


def as_dict(report: PullReport | DeliveryReport) -> dict:
    return asdict(report)
