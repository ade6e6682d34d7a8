"""The steps of a supplier collection, as Prefect tasks.

Only transient failures are retried (``retry_condition_fn``): an unavailable or slow portal, a
rate limit, a storage hiccup. A wrong or expired password, a locked account or an action needed
on the portal is never retried: retrying a wrong password locks accounts at the supplier.
The tasks take live browser objects, so they are never cached (``NO_CACHE``).
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date
from typing import TYPE_CHECKING, Any

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State
from prefect.tasks import exponential_backoff

from connectors.base import Credentials, FetchedDocument, PortalConnector, RemoteDocument
from glaneur import collection
from glaneur.db import session_scope
from glaneur.errors import GlaneurError, PortalUnavailable
from glaneur.settings import Settings, get_settings
from glaneur.storage import get_storage, safe_part
from tasks.evidence import publish_evidence

if TYPE_CHECKING:
    from connectors.base import SecondFactorChallenge


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


@_step(name="resume-session")
def resume_session(connector: PortalConnector) -> bool:
    """Whether a remembered portal session is still logged in (then no login, no second factor)."""
    with portal_errors(connector.provider.name, "the remembered session"):
        return connector.is_logged_in()


@_step(name="list-documents")
def list_documents(connector: PortalConnector, since: date | None) -> list[RemoteDocument]:
    with portal_errors(connector.provider.name, "the invoice list"):
        return connector.list_documents(since)


@_step(name="download-document")
def download_document(connector: PortalConnector, document: RemoteDocument) -> FetchedDocument:
    with portal_errors(connector.provider.name, f"the download of {document.reference}"):
        return connector.fetch(document)


@_step(name="file-document")
def file_document(
    plan: collection.CollectionPlan, account_id: int, run_id: int, fetched: FetchedDocument
) -> collection.FilingOutcome:
    settings = get_settings()
    with session_scope() as session:
        return collection.file_document(
            session, get_storage(settings), plan, account_id=account_id, run_id=run_id, fetched=fetched, settings=settings
        )


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
    return step.with_options(
        retries=settings.retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=settings.retry_base_seconds)(settings.retries),
    )


def transient_steps(settings: Settings) -> dict[str, Any]:
    return {
        "authenticate": with_retries(authenticate, settings),
        "answer_second_factor": with_retries(answer_second_factor, settings),
        "resume_session": with_retries(resume_session, settings),
        "list_documents": with_retries(list_documents, settings),
        "download_document": with_retries(download_document, settings),
        "file_document": with_retries(file_document, settings),
        "keep_evidence": keep_evidence,
    }
