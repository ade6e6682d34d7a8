"""What a POWENS connection's ``state`` means in Glaneur's one status vocabulary (the domain's reading of
Powens' documented states: the client in ``connectors/powens.py`` and the doctor both use it)."""

from __future__ import annotations

from glaneur.statuses import Status

# The documented connection states ("Error message" page) onto the one status vocabulary.
# ``None`` (no state): the connection synchronised.
STATE_STATUS: dict[str | None, Status] = {
    None: Status.OK,
    "wrongpass": Status.WRONG_CREDENTIALS,
    "passwordExpired": Status.CREDENTIALS_EXPIRED,
    "actionNeeded": Status.ACTION_NEEDED,
    "additionalInformationNeeded": Status.ACTION_NEEDED,
    "SCARequired": Status.AWAITING_SECOND_FACTOR,
    "webauthRequired": Status.AWAITING_SECOND_FACTOR,
    "decoupled": Status.AWAITING_SECOND_FACTOR,
    "validating": Status.RUNNING,  # transient: the bank is validating; the next sync tells
    "rateLimiting": Status.RATE_LIMITED,
    "websiteUnavailable": Status.PORTAL_UNAVAILABLE,
    "bug": Status.INTERNAL_ERROR,
    "notSupported": Status.NOT_COMPATIBLE,
}


def status_of_state(state: str | None) -> Status:
    """The status a connection ``state`` means; an undocumented state is an internal error (named in the message)."""
    return STATE_STATUS.get(state, Status.INTERNAL_ERROR)
