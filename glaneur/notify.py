"""In-app notifications (the bell, ``glaneur notifications``) and the mails sent alongside them.

Free of Prefect: flows call :func:`notify_channel_status` after recording a channel's status, and
pass a link to the run (``tasks.human.flow_run_link``, which falls back on Prefect's UI URL).
Functions flush; the caller commits.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

from sqlmodel import Session, col, select

from glaneur.errors import UsageError
from glaneur.mail import Delivery, Mail, check_one_line, send
from glaneur.models import Channel, Notification, Organization, User
from glaneur.settings import Settings, get_settings
from glaneur.statuses import Status, describe

log = logging.getLogger(__name__)

CHANNEL_STATUS = "channel_status"  # Notification.kind of notify_channel_status

# Short titles for subjects, in the seeds' French with the product's English.
STATUS_TITLES: dict[Status, str] = {
    Status.AWAITING_CREDENTIALS: "identifiants attendus / awaiting credentials",
    Status.AWAITING_SECOND_FACTOR: "double authentification en attente / second factor needed",
    Status.SECOND_FACTOR_TIMEOUT: "double authentification sans réponse / second factor timed out",
    Status.WRONG_CREDENTIALS: "identifiants refusés / wrong credentials",
    Status.ACCOUNT_LOCKED: "compte bloqué / account locked",
    Status.CREDENTIALS_EXPIRED: "identifiants expirés / credentials expired",
    Status.ACTION_NEEDED: "action requise sur le portail / action needed",
    Status.PORTAL_CHANGED: "interface fournisseur modifiée / portal changed",
}

# Statuses that show a past problem is gone, so that the next one is told again. Transient
# failures (portal_unavailable, rate_limited, storage_error) and internal errors say nothing
# about whether the person acted: they keep the notice, so a blip does not re-send the same mail.
_PROBLEM_GONE = {Status.OK, Status.MORE_TO_COLLECT, Status.NEW}

_WHITESPACE = re.compile(r"\s+")


def status_title(status: Status | str) -> str:
    status = Status(status)
    return STATUS_TITLES.get(status, status.value.replace("_", " "))


def _user(session: Session, user: User | int) -> User:
    if isinstance(user, User):
        return user
    found = session.get(User, user)
    if found is None:
        raise UsageError(f"no user with id {user}.")
    return found


def notify_user(
    session: Session,
    user: User | int,
    *,
    kind: str,
    subject: str,
    body: str,
    link: str | None = None,
    settings: Settings | None = None,
) -> Delivery:
    """Add a notification to ``user``'s bell and mail it to their address; the bell entry stays even if
    the mail cannot be delivered (see the returned :class:`Delivery`)."""
    user = _user(session, user)
    subject = check_one_line(subject, "subject").strip()
    check_one_line(link or "", "link")
    if not subject:
        raise UsageError("the notification subject is empty: give a subject.")
    session.add(Notification(user_id=user.id, kind=kind, subject=subject, body=body, link=link))
    session.flush()
    try:
        delivery = send(Mail(to=user.email, subject=subject, body=body, link=link), settings or get_settings())
    except UsageError as error:
        # The address comes from the user's profile, not from the caller: a delivery problem.
        org = session.get(Organization, user.organization_id).slug
        delivery = Delivery(
            False, "", f"{error} Correct the e-mail address in the user's profile "
            f"(glaneur user update {org} {user.email} --email ADDRESS)."
        )
    if not delivery.delivered:
        log.warning("mail to %s (%s) not delivered: %s", user.email, subject, delivery.error)
    return delivery


def notify_channel_status(
    session: Session,
    channel_id: int,
    *,
    link: str | None = None,
    settings: Settings | None = None,
) -> bool:
    """Tell the channel's owner once per change into a state that needs a person; True when a mail went out.

    The owner is ``owner_user_id``, else the recipient (utilisateur destinataire). ``notified_status``
    remembers what they were told: the same status on the next daily run sends nothing; a different
    one that needs a person sends again; ``ok`` clears it so that a later failure is told again.
    """
    channel = session.get(Channel, channel_id)
    if channel is None:
        raise UsageError(f"no channel with id {channel_id}.")
    status = Status(channel.status)
    notified = Status(channel.notified_status) if channel.notified_status is not None else None

    if not describe(status).needs_person:
        if status in _PROBLEM_GONE and notified is not None:
            channel.notified_status = None
            session.add(channel)
            session.flush()
        return False
    if status == notified or channel.deleted_at is not None:
        return False

    owner = _user(session, channel.owner_user_id or channel.recipient_user_id)
    label = _one_line(channel.label) or channel.slug
    advice = channel.status_message.strip() or describe(status).message
    lines = [
        f"Collector / collecteur: {label} ({channel.slug})",
        f"Status: {status.value} ({status_title(status)})",
        "",
        advice,
    ]
    if link:
        lines += ["", "Run in the Prefect UI:"]
    delivery = notify_user(
        session,
        owner,
        kind=CHANNEL_STATUS,
        subject=f"[Glaneur] {label}: {status_title(status)}",
        body="\n".join(lines),
        link=link,
        settings=settings,
    )
    # Told in the bell even when the mail failed: a wrong address must not turn into a daily bell entry.
    channel.notified_status = status
    session.add(channel)
    session.flush()
    return delivery.delivered


def list_notifications(session: Session, user: User | int, *, unread_only: bool = False) -> list[Notification]:
    """The user's notifications, newest first."""
    user = _user(session, user)
    query = select(Notification).where(Notification.user_id == user.id)
    if unread_only:
        query = query.where(col(Notification.read_at).is_(None))
    query = query.order_by(col(Notification.created_at).desc(), col(Notification.id).desc())
    return list(session.exec(query).all())


def mark_read(session: Session, user: User | int, ids: list[int] | None = None) -> int:
    """Mark the user's unread notifications read (all, or those in ``ids``); returns how many changed.

    Ids of other users' notifications are ignored, never marked.
    """
    user = _user(session, user)
    query = select(Notification).where(Notification.user_id == user.id, col(Notification.read_at).is_(None))
    if ids is not None:
        if not ids:
            return 0
        query = query.where(col(Notification.id).in_(ids))
    now = datetime.now(UTC)
    changed = 0
    for notification in session.exec(query).all():
        notification.read_at = now
        session.add(notification)
        changed += 1
    session.flush()
    return changed


# A run's page in Prefect 3.8's current UI. Deep links outside ``/v2/`` open the legacy UI, whose
# forms show ``format: password`` fields (an invitation's password, a TOTP seed) as plain text.
RUN_PAGE = "/v2/runs/flow-run/{flow_run_id}"


def run_page(base_url: str, flow_run_id: str) -> str:
    return base_url.rstrip("/") + RUN_PAGE.format(flow_run_id=flow_run_id)


def configured_run_link(flow_run_id: str | None, settings: Settings | None = None) -> str | None:
    """The run's page under ``GLANEUR_PREFECT_UI_URL`` (None when unset); mails use ``tasks.human.flow_run_link``."""
    settings = settings or get_settings()
    if not flow_run_id or not settings.prefect_ui_url:
        return None
    return run_page(settings.prefect_ui_url, flow_run_id)


def _one_line(text: str) -> str:
    return _WHITESPACE.sub(" ", text or "").strip()
