"""Typed exceptions, one per status of :mod:`glaneur.statuses`.

Messages never contain a secret. ``detail`` is for operators (what exactly went wrong);
the status table gives the user-facing advice.
"""

from __future__ import annotations

from glaneur.statuses import Status, describe


class GlaneurError(Exception):
    """Base of every error Glaneur reports with a status."""

    status: Status = Status.INTERNAL_ERROR

    def __init__(self, detail: str = "") -> None:
        self.detail = detail
        super().__init__(detail or describe(self.status).message)

    @property
    def retried(self) -> bool:
        return describe(self.status).retried

    @property
    def user_message(self) -> str:
        advice = describe(self.status).message
        return f"{self.detail} {advice}".strip() if self.detail else advice


class UsageError(Exception):
    """Bad input from a person (CLI, settings): names what to fix; nothing was changed."""


class ConfigurationError(UsageError):
    """A setting is missing or wrong (vault key, storage, database)."""


class AwaitingCredentials(GlaneurError):
    status = Status.AWAITING_CREDENTIALS


class AwaitingSecondFactor(GlaneurError):
    status = Status.AWAITING_SECOND_FACTOR


class WrongSecondFactor(AwaitingSecondFactor):
    """The portal refused the code typed or generated; the approver may be asked again (bounded)."""


class SecondFactorTimeout(GlaneurError):
    status = Status.SECOND_FACTOR_TIMEOUT


class SecondFactorRefused(GlaneurError):
    """The portal refused the last second-factor answer allowed (or dropped the login): this run is over."""

    status = Status.SECOND_FACTOR_REFUSED


class SecondFactorDeclined(GlaneurError):
    """The approver declined the login in the form: Glaneur did not log in."""

    status = Status.SECOND_FACTOR_DECLINED


class WrongCredentials(GlaneurError):
    status = Status.WRONG_CREDENTIALS


class AccountLocked(GlaneurError):
    status = Status.ACCOUNT_LOCKED


class CredentialsExpired(GlaneurError):
    status = Status.CREDENTIALS_EXPIRED


class ActionNeeded(GlaneurError):
    status = Status.ACTION_NEEDED


class PortalChanged(GlaneurError):
    """The page is not the one expected. Navigation attaches evidence (screenshot, trace) later."""

    status = Status.PORTAL_CHANGED


class _Paced(GlaneurError):
    """A refusal that may say when to come back (``Retry-After``, in seconds; None when it did not say)."""

    def __init__(self, detail: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class PortalUnavailable(_Paced):
    status = Status.PORTAL_UNAVAILABLE


class RateLimited(_Paced):
    status = Status.RATE_LIMITED


class NotCompatible(GlaneurError):
    status = Status.NOT_COMPATIBLE


class DatabaseUnavailable(GlaneurError):
    """Glaneur's own database could not be reached (stopped, unreachable, locked, unreadable)."""

    status = Status.INTERNAL_ERROR


class StorageError(GlaneurError):
    status = Status.STORAGE_ERROR


class SecretUnreadable(GlaneurError):
    """One vault entry cannot be decrypted (damaged, or encrypted under a key no longer configured).

    Raised for that entry alone: the key itself reads the rest of the vault, so only the account,
    partner or source that references the entry is affected, and entering its secret again repairs it.
    """

    status = Status.SECRET_UNREADABLE


class InvalidDocument(PortalChanged):
    """The portal served something that is not an acceptable invoice (not a PDF, empty, oversized)."""
