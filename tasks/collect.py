"""The steps of a supplier collection, as Prefect tasks.

Only transient failures are retried (``retry_condition_fn``): an unavailable or slow portal, a
rate limit, a storage hiccup. A wrong or expired password, a locked account or an action needed
on the portal is never retried: retrying a wrong password locks accounts at the supplier.
The tasks take live browser objects, so they are never cached (``NO_CACHE``).

One task run per step of an account (log in, list, download and file, ...), never one per
invoice: the Prefect server records each task run, and a log of one line per invoice filed
reads better than two "Finished in state Completed()" lines per invoice. A step with nothing to do
is not run: an account whose listed invoices are all filed already has no download step, and the
run's bookkeeping (the sweep of stale rows, the history artifact) is plain calls, not task runs.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import TYPE_CHECKING

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from prefect import Task, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State
from prefect.tasks import exponential_backoff

from connectors.base import PortalConnector
from glaneur.contract import Credentials, Listing, RemoteDocument
from glaneur.db import session_scope
from glaneur.errors import GlaneurError, InvalidDocument, PortalUnavailable
from glaneur.invoices import collection
from glaneur.settings import Settings, get_settings
from glaneur.storage import StorageConflict, get_storage, safe_part
from tasks.evidence import publish_evidence

if TYPE_CHECKING:
    from glaneur.contract import SecondFactorChallenge


def is_transient(task: Task, task_run: TaskRun, state: State) -> bool:
    """Retry only what the status table marks as retried, and never sooner than the portal asked.

    A ``Retry-After`` within ``GLANEUR_MAX_RETRY_AFTER_SECONDS`` is honoured by the connector (its
    next request waits until then, so the retry comes after both Prefect's backoff and the portal's
    delay); a longer one is not retried in this run: holding a browser that long helps nobody.
    """
    try:
        state.result()
    except GlaneurError as error:
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None and retry_after > get_settings().max_retry_after_seconds:
            return False
        return error.retried
    except Exception:
        return False
    return False


@contextmanager
def portal_errors(provider: str, step: str):
    """Browser-level failures become statuses: a timeout or a refused connection is an unavailable portal."""
    try:
        yield
    except GlaneurError:
        raise
    except PlaywrightTimeout as exc:
        raise PortalUnavailable(f"{provider} did not answer in time during {step}.") from exc
    except PlaywrightError as exc:
        if "net::" in str(exc):
            reason = str(exc).split("net::", 1)[1].split()[0]
            raise PortalUnavailable(f"{provider} could not be reached during {step} ({reason}).") from exc
        raise


_step = task(cache_policy=NO_CACHE, retry_condition_fn=is_transient, retry_jitter_factor=0.2)


@_step(name="authenticate")
def authenticate(connector: PortalConnector, credentials: Credentials) -> SecondFactorChallenge | None:
    """Log in; a challenge back means the portal asks for a second factor (the browser waits on that page)."""
    with portal_errors(connector.provider.name, "login"):
        return connector.login(credentials)


@_step(name="answer-second-factor")
def answer_second_factor(
    connector: PortalConnector, challenge: SecondFactorChallenge, answer: str | None
) -> SecondFactorChallenge | None:
    with portal_errors(connector.provider.name, "the second factor"):
        return connector.answer_second_factor(challenge, answer)


@_step(name="reopen-pending-login")
def reopen_pending_login(connector: PortalConnector, url: str) -> bool:
    """In a new browser restored from the saved state: whether the portal still shows the pending second factor."""
    with portal_errors(connector.provider.name, "the pending login"):
        return connector.reopen_pending_login(url)


@_step(name="resume-session")
def resume_session(connector: PortalConnector) -> bool:
    """Whether a remembered portal session is still logged in (then no login, no second factor)."""
    with portal_errors(connector.provider.name, "the remembered session"):
        return connector.is_logged_in()


@_step(name="list-documents")
def list_documents(connector: PortalConnector, since: date | None, start: str | None = None) -> Listing:
    """The list from its top, or from ``start`` where an earlier run left it; at most GLANEUR_MAX_LIST_PAGES pages."""
    with portal_errors(connector.provider.name, "the invoice list"):
        listed = connector.list_documents(since) if start is None else connector.list_documents(since, start)
    return listed if isinstance(listed, Listing) else Listing(listed, pages=1)  # a list without pages


@_step(name="download-and-file")
def download_and_file(
    connector: PortalConnector,
    plan: collection.CollectionPlan,
    account: collection.AccountPlan,
    run_id: int,
    documents: list[RemoteDocument],
) -> collection.FilingReport:
    """Download and file the listed invoices not filed yet: one step (one task run) for the account, not one per invoice.

    A retry starts the step again and skips what the first attempt filed. A document refused
    (not a PDF, too big, a storage conflict) is that document only: the others are filed.
    """
    logger = get_run_logger()
    settings = get_settings()
    storage = get_storage(settings)
    refused: list[GlaneurError] = []
    newest: date | None = None
    with session_scope() as session:
        filed = collection.filed_references(session, plan.channel_id, [d.reference for d in documents])
        for document in documents:
            if document.reference not in filed:
                try:
                    with portal_errors(connector.provider.name, f"the download of {document.reference}"):
                        fetched = connector.fetch(document)
                    outcome = collection.file_document(
                        session, storage, plan, account_id=account.id, run_id=run_id, fetched=fetched, settings=settings
                    )
                except (InvalidDocument, StorageConflict) as error:
                    logger.warning("%s: invoice %s not filed: %s", account.login, document.reference, error.user_message)
                    refused.append(error)
                    continue
                if outcome.new:
                    logger.info(
                        "%s: filed invoice %s dated %s, %s: %s", account.login, document.reference,
                        document.document_date.isoformat(), _amount(document), outcome.storage_key,
                    )
            newest = max(newest or document.document_date, document.document_date)
        new = collection.filed_by_run(session, run_id)
    handled = len(documents) - len(refused)
    return collection.FilingReport(new=new, already_had=handled - new, newest=newest, refused=tuple(refused))


def _amount(document: RemoteDocument) -> str:
    return "no amount" if document.amount is None else f"{document.amount} {document.currency}"


@_step(name="keep-evidence")
def keep_evidence(plan: collection.CollectionPlan, run_id: int, files: dict[str, bytes]) -> list[str]:
    """Screenshot and trace of a page that no longer matches, kept beside the documents."""
    storage = get_storage(get_settings())
    keys = []
    for name, content in files.items():
        key = "/".join(safe_part(part) for part in (plan.organization, "_evidence", plan.channel, f"run-{run_id}", name))
        content_type = "image/png" if name.endswith(".png") else "application/zip"
        storage.put(key, content, metadata={"channel": plan.channel, "run": str(run_id)}, content_type=content_type)
        keys.append(key)
    publish_evidence(plan, keys)  # image artifact and browser links on the run (tasks/evidence.py)
    return keys


def with_retries(step: Task, settings: Settings) -> Task:
    """The step with the configured retry policy (exponential backoff)."""
    return _with_policy(step, settings.retries, settings.retry_base_seconds)


@cache
def _with_policy(step: Task, retries: int, retry_base_seconds: float) -> Task:
    """Made once a process for each step and policy: a copy of a task costs about 4 ms of CPU, six of them a run.
    Running a task does not change it, so the worker's threads share the copies as they share the tasks."""
    return step.with_options(
        retries=retries, retry_delay_seconds=exponential_backoff(backoff_factor=retry_base_seconds)(retries)
    )


@dataclass(frozen=True)
class AccountSteps:
    """The steps of one account's collection, each a task run with the configured retries (keep_evidence: none)."""

    authenticate: Task
    answer_second_factor: Task
    resume_session: Task
    reopen_pending_login: Task
    list_documents: Task
    download_and_file: Task
    keep_evidence: Task

    @classmethod
    def configured(cls, settings: Settings) -> AccountSteps:
        return cls(
            authenticate=with_retries(authenticate, settings),
            answer_second_factor=with_retries(answer_second_factor, settings),
            resume_session=with_retries(resume_session, settings),
            reopen_pending_login=with_retries(reopen_pending_login, settings),
            list_documents=with_retries(list_documents, settings),
            download_and_file=with_retries(download_and_file, settings),
            keep_evidence=keep_evidence,
        )
