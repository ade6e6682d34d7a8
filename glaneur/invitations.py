"""Invitations: asking the account holder to enter the credentials they alone know.

("Cliquez sur ... ou envoyez la demande à un utilisateur"; "L'utilisateur recevra un mail
d'invitation".) The waiting itself is a suspended Prefect flow run (flows/request_credentials.py);
this module keeps the state that must survive the run being started again from the top.
"""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, col, select

from glaneur.errors import UsageError
from glaneur.models import Channel, Invitation, InvitationState, User, utcnow
from glaneur.statuses import Status


def _aware(moment):
    from datetime import timezone

    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def open_invitation(
    session: Session, channel_slug: str, invitee_email: str, *, flow_run_id: str | None, ttl: timedelta
) -> Invitation:
    """The pending invitation of this flow run, created on its first execution."""
    channel = session.exec(select(Channel).where(Channel.slug == channel_slug, Channel.active == True)).first()  # noqa: E712
    if channel is None:
        raise UsageError(f"unknown or deleted channel '{channel_slug}'.")
    invitee = session.exec(
        select(User).where(User.organization_id == channel.organization_id, User.email == invitee_email.strip().lower())
    ).first()
    if invitee is None:
        raise UsageError(
            f"'{invitee_email}' is not a user of the channel's organisation: create the user first, "
            f"with the e-mail address the account holder reads."
        )
    if flow_run_id:
        existing = session.exec(select(Invitation).where(Invitation.flow_run_id == flow_run_id)).first()
        if existing is not None:
            return existing
    invitation = Invitation(
        channel_id=channel.id,
        invitee_user_id=invitee.id,
        email=invitee.email,
        expires_at=utcnow() + ttl,
        flow_run_id=flow_run_id,
    )
    session.add(invitation)
    channel.status = Status.AWAITING_CREDENTIALS
    channel.status_changed_at = utcnow()
    session.add(channel)
    session.flush()
    return invitation


def record_sent(session: Session, invitation: Invitation, *, delivered: bool, error: str = "") -> None:
    invitation.sent_count += 1
    invitation.last_sent_at = utcnow()
    invitation.delivery_error = "" if delivered else error
    if not delivered:
        invitation.state = InvitationState.UNDELIVERABLE
    elif invitation.state == InvitationState.UNDELIVERABLE:
        invitation.state = InvitationState.PENDING
    session.add(invitation)
    session.flush()


def seconds_left(invitation: Invitation) -> int:
    return max(1, int((_aware(invitation.expires_at) - utcnow()).total_seconds()))


def mark(session: Session, invitation: Invitation, state: InvitationState) -> None:
    invitation.state = state
    if state == InvitationState.ANSWERED:
        invitation.answered_at = utcnow()
    session.add(invitation)
    session.flush()


def expire_overdue(session: Session) -> int:
    """Invitations past their expiry become expired (the daily dispatch calls this)."""
    now = utcnow()
    overdue = [
        invitation
        for invitation in session.exec(
            select(Invitation).where(col(Invitation.state).in_([InvitationState.PENDING, InvitationState.UNDELIVERABLE]))
        ).all()
        if _aware(invitation.expires_at) <= now
    ]
    for invitation in overdue:
        invitation.state = InvitationState.EXPIRED
        session.add(invitation)
    session.flush()
    return len(overdue)


def pending_for(session: Session, channel_id: int) -> list[Invitation]:
    return list(
        session.exec(
            select(Invitation)
            .where(Invitation.channel_id == channel_id)
            .order_by(col(Invitation.created_at).desc())
        ).all()
    )
