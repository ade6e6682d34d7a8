"""The statuses a user sees, and what each means: one table used by the CLI, the history and the artifacts.

Each exception in :mod:`glaneur.errors` carries exactly one of these statuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    MORE_TO_COLLECT = "more_to_collect"  # collected what one run reads of a longer list; the next run goes on
    RUNNING = "running"  # a run under way; a run whose process died is closed as internal_error
    AWAITING_CREDENTIALS = "awaiting_credentials"
    AWAITING_SECOND_FACTOR = "awaiting_second_factor"
    SECOND_FACTOR_TIMEOUT = "second_factor_timeout"
    SECOND_FACTOR_REFUSED = "second_factor_refused"
    SECOND_FACTOR_DECLINED = "second_factor_declined"
    WRONG_CREDENTIALS = "wrong_credentials"
    ACCOUNT_LOCKED = "account_locked"
    CREDENTIALS_EXPIRED = "credentials_expired"
    ACTION_NEEDED = "action_needed"
    PORTAL_CHANGED = "portal_changed"
    PORTAL_UNAVAILABLE = "portal_unavailable"
    RATE_LIMITED = "rate_limited"
    NOT_COMPATIBLE = "not_compatible"
    STORAGE_ERROR = "storage_error"
    INTERNAL_ERROR = "internal_error"
    SECRET_UNREADABLE = "secret_unreadable"
    NEW = "new"  # a channel that has not run yet


@dataclass(frozen=True)
class StatusInfo:
    status: Status
    title: str  # a few words: the name of the run's final state in the Prefect UI (runs list)
    message: str  # what the user reads, in plain words, saying what to do next
    retried: bool  # transient: Prefect retries the step with backoff
    needs_person: bool  # the channel's owner is told (once per change of state)


_TABLE = [
    StatusInfo(Status.OK, "Collected", "Collection works. New invoices are filed as they appear.", False, False),
    StatusInfo(
        Status.MORE_TO_COLLECT, "More to collect",
        "The supplier's invoice list is longer than one run reads (GLANEUR_MAX_LIST_PAGES pages): this run "
        "filed what it read, and the next runs go on from where it stopped, with the new invoices too, until "
        "the end of the list. Nothing needs doing; 'glaneur run' goes on now.",
        False,
        False,
    ),
    StatusInfo(
        Status.RUNNING, "Collecting",
        "A collection is under way. Its run in the Prefect UI shows each step as it happens.",
        False,
        False,
    ),
    StatusInfo(
        Status.NEW,
        "Not collected yet",
        "Not collected yet: the first collection starts as soon as credentials are entered, otherwise at the "
        "channel's daily time slot ('glaneur run' collects now).",
        False,
        False,
    ),
    StatusInfo(
        Status.AWAITING_CREDENTIALS, "Awaiting credentials",
        "Waiting for the account holder to enter the credentials: check the invitation's e-mail address, "
        "or resend the invitation.",
        False,
        True,
    ),
    StatusInfo(
        Status.AWAITING_SECOND_FACTOR, "Awaiting second factor",
        "The portal asked for a second factor: the approver must type the code or approve in the app "
        "(Prefect UI, run's Resume action).",
        False,
        True,
    ),
    StatusInfo(
        Status.SECOND_FACTOR_TIMEOUT, "Second factor timed out",
        "Nobody answered the second factor in time. The next daily run asks again; store a TOTP seed "
        "to make it automatic.",
        False,
        True,
    ),
    StatusInfo(
        Status.SECOND_FACTOR_REFUSED, "Second factor refused",
        "The portal refused every second-factor code it was given, so this run is over and nothing "
        "was collected. Check the codes come from the right device or app; the next daily run asks again.",
        False,
        True,
    ),
    StatusInfo(
        Status.SECOND_FACTOR_DECLINED, "Login declined",
        "The approver declined this login, so Glaneur did not log in. If nobody on your side started it, "
        "change the portal password; otherwise the next daily run asks again.",
        False,
        True,
    ),
    StatusInfo(
        Status.WRONG_CREDENTIALS, "Wrong credentials",
        "The portal refused the login or password (identifiants refusés). Update the credentials with "
        "'Modifier'; Glaneur does not retry, so the supplier does not lock the account.",
        False,
        True,
    ),
    StatusInfo(
        Status.ACCOUNT_LOCKED, "Account locked",
        "The supplier has blocked logins to this account. Unlock it on the portal (or call the supplier), "
        "then update the credentials; Glaneur does not retry until then.",
        False,
        True,
    ),
    StatusInfo(
        Status.CREDENTIALS_EXPIRED, "Password expired",
        "The password has expired (identifiants expirés). Change it on the supplier's portal, then enter "
        "the new one in Glaneur.",
        False,
        True,
    ),
    StatusInfo(
        Status.ACTION_NEEDED, "Action needed on portal",
        "The portal asks for something only you can do (accept new terms, confirm details). Log in to the "
        "portal once and complete it; collection resumes at the next run.",
        False,
        True,
    ),
    StatusInfo(
        Status.PORTAL_CHANGED, "Portal changed",
        "The supplier's portal changed (interface fournisseur modifiée): the connector must be updated. "
        "Our team has a screenshot and a trace; nothing needs doing on your side.",
        False,
        True,
    ),
    StatusInfo(
        Status.PORTAL_UNAVAILABLE, "Portal unavailable",
        "No answer from the other side (the portal, bank or statement source named above). Glaneur retries "
        "by itself; if it lasts several days, open that address in a browser.",
        True,
        False,
    ),
    StatusInfo(
        Status.RATE_LIMITED, "Rate limited",
        "The portal asked us to slow down. Glaneur retries later by itself.",
        True,
        False,
    ),
    StatusInfo(
        Status.NOT_COMPATIBLE, "Not compatible",
        "This supplier is not compatible with automatic collection. Check the catalogue or ask for a new "
        "collector ('Demander l'ajout d'un collecteur').",
        False,
        False,
    ),
    StatusInfo(
        Status.STORAGE_ERROR, "Storage error",
        "Filing to storage failed; nothing was half-written. Glaneur retries; if it lasts, check the "
        "storage settings and credentials.",
        True,
        False,
    ),
    StatusInfo(
        Status.SECRET_UNREADABLE, "Secret unreadable",
        "A stored secret could not be read (vault key changed or entry damaged): enter the credentials "
        "again ('Modifier'). Other channels are not affected.",
        False,
        True,
    ),
    StatusInfo(
        Status.INTERNAL_ERROR, "Internal error",
        "Glaneur failed unexpectedly. The run's log in the Prefect UI has the details for support.",
        False,
        False,
    ),
]

# A run that ended with one of these collected what it set out to (the flow run ends Completed).
COLLECTED = frozenset({Status.OK, Status.MORE_TO_COLLECT})

# An account left in one of these is not logged in again until a person acts (new credentials put it
# back to new): each try would be one more refused login at the supplier, which locks accounts.
NOT_TRIED_AGAIN = frozenset({Status.WRONG_CREDENTIALS, Status.ACCOUNT_LOCKED})

STATUS_TABLE: dict[Status, StatusInfo] = {info.status: info for info in _TABLE}
assert set(STATUS_TABLE) == set(Status), "every status needs a row"


def describe(status: Status | str) -> StatusInfo:
    return STATUS_TABLE[Status(status)]
