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
    """After a mail to the invitee: sent once more, to the address their profile holds now."""
    invitee = session.get(User, invitation.invitee_user_id)
    if invitee is not None:
        invitation.email = invitee.email  # a profile corrected since (glaneur user update): sent there
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


WAITING = (InvitationState.PENDING, InvitationState.UNDELIVERABLE)  # states of an invitation still open


def form_key(invitation: Invitation) -> str:
    """The key of the form the invitation's run waits on: a new one after each refused answer."""
    return f"invitation-{invitation.id}" + (f"-{invitation.refused_answers + 1}" if invitation.refused_answers else "")


def for_run(session: Session, flow_run_id: str) -> Invitation | None:
    """The invitation a flow run waits for, whatever became of its channel since."""
    return session.exec(select(Invitation).where(Invitation.flow_run_id == flow_run_id)).first()


def is_overdue(invitation: Invitation) -> bool:
    return _aware(invitation.expires_at) <= utcnow()


def is_open(invitation: Invitation) -> bool:
    """Still waiting for the holder's answer: neither answered, cancelled nor past its expiry."""
    return invitation.state in WAITING and not is_overdue(invitation)


def expire(session: Session, invitation: Invitation) -> bool:
    """Mark an unanswered invitation expired and tell the channel's owner, once; True when this call did it."""
    from glaneur.notify import notify_user

    if invitation.state in WAITING:
        invitation.state = InvitationState.EXPIRED
        session.add(invitation)
    if invitation.state != InvitationState.EXPIRED or invitation.owner_told_at is not None:
        session.flush()
        return False
    channel = session.get(Channel, invitation.channel_id)
    owner_id = channel.owner_user_id or channel.recipient_user_id
    invitation.owner_told_at = utcnow()
    session.add(invitation)
    session.flush()
    if owner_id is not None and channel.deleted_at is None:
        notify_user(
            session,
            owner_id,
            kind="invitation_expired",
            subject=f"[Glaneur] {channel.label}: invitation expired / invitation expirée",
            body=(
                f"{invitation.email} did not enter the credentials of the collector '{channel.label}' "
                f"({channel.slug}) before the invitation expired on {_aware(invitation.expires_at):%Y-%m-%d %H:%M} UTC.\n"
                + (f"Nothing is collected until the holder connects the bank: connect it yourself ('glaneur bank "
                   f"connect'), or send a new request with 'glaneur bank invite'."
                   if channel.kind == "bank" else
                   f"Nothing is collected until credentials are entered: enter them yourself ('Modifier'), or send "
                   f"a new invitation with 'glaneur channel invite {channel.slug} --invitee {invitation.email}'.")
            ),
        )
    return True


def expire_overdue(session: Session) -> int:
    """Invitations past their expiry become expired and their owners are told (the daily dispatch calls this,
    as a backstop to the expiry run each invitation schedules for itself)."""
    overdue = [
        invitation
        for invitation in session.exec(select(Invitation).where(col(Invitation.state).in_(list(WAITING)))).all()
        if is_overdue(invitation)
    ]
    for invitation in overdue:
        expire(session, invitation)
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


def invitation_mail(invitation: Invitation, channel: Channel, provider_name: str, portal: str, *,
                    reminder: bool = False) -> tuple[str, str]:
    """The invitation mail's subject and body; its link is the holder's own form (``signing.credentials_link``),
    never the Prefect UI (which only data ops and approvers open)."""
    subject = f"[Glaneur] {'Reminder: c' if reminder else 'C'}redentials requested for {channel.label} ({provider_name})"
    body = (
        f"You are asked to enter the credentials of your customer area at {provider_name} ({portal}), "
        f"collected by '{channel.label}'.\n"
        f"Open the link and fill in the form: your login and password there, which are encrypted at once and seen "
        f"by nobody. The request expires on {_aware(invitation.expires_at):%Y-%m-%d %H:%M} UTC."
    )
    return subject, body
