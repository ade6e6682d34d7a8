"""``glaneur doctor`` for a bank channel: the POWENS page's checklist, from status to consent.

What support checks when movements do not arrive: the channel's status (and, before the first
movements, when they are expected), the connection's state at POWENS and what to do about it,
the holder's consent (who, when, which text; revoked or not), the Powens access in the vault
(decryptable, never shown), the accounts and their movements, the last run.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from glaneur import bank
from glaneur.doctor import Check, Verdict, _last_run, _status
from glaneur.errors import UsageError
from glaneur.models import BankConsentState, Channel, CollectionRun
from glaneur.statuses import Status, describe


def diagnose_bank(session: Session, channel: Channel, now: datetime) -> list[Check]:
    from sqlmodel import col, select

    checks = [_status(session, channel)]
    try:
        _, connection = bank.get_connection(session, channel, deleted_ok=True)
    except UsageError as error:
        return [*checks, Check("connection", Verdict.FAIL, str(error),
                               "Add the bank to the referential, then connect it (glaneur bank add, bank connect).")]
    state = connection.state
    if connection.powens_connection_id is None:
        checks.append(Check("connection", Verdict.FAIL, "no POWENS connection",
                            f"Connect the bank: glaneur bank connect (or reconnect {channel.slug})."))
    elif state is None:
        checks.append(Check("connection", Verdict.OK, f"POWENS connection {connection.powens_connection_id}, synced"))
    else:
        status = Status(bank_status(state))
        checks.append(Check("connection", Verdict.FAIL if not describe(status).retried else Verdict.WARN,
                            f"POWENS connection {connection.powens_connection_id}: state {state}"
                            f"{' (' + connection.error_message + ')' if connection.error_message else ''}",
                            describe(status).message))
    consent = bank.consent_of(session, connection)
    if consent is None:
        checks.append(Check("consent", Verdict.FAIL, "no consent of the account holder recorded",
                            "Record the holder's explicit consent before any connection (RGPD)."))
    elif consent.state != BankConsentState.GIVEN.value:
        when = f" on {consent.revoked_at:%Y-%m-%d %H:%M} UTC" if consent.revoked_at else ""
        checks.append(Check("consent", Verdict.FAIL, f"consent of {consent.holder} {consent.state}{when}",
                            "Collection stopped; a new connection needs the holder's consent again."))
    else:
        checks.append(Check("consent", Verdict.OK,
                            f"given by {consent.holder} on {consent.given_at:%Y-%m-%d %H:%M} UTC, recorded by "
                            f"{consent.recorded_by}; text sha256 {consent.text_sha256[:12]}"))
    if connection.token_ref is None:
        checks.append(Check("access", Verdict.FAIL, "no POWENS access in the vault", "Connect the bank again."))
    else:
        try:
            bank.read_token(session, connection)
        except Exception as error:  # noqa: BLE001 - a vault problem is reported, never a crash
            checks.append(Check("access", Verdict.FAIL, f"the POWENS access cannot be read ({type(error).__name__})",
                                "Check the vault key, or connect the bank again."))
        else:
            checks.append(Check("access", Verdict.OK, "POWENS access stored and decryptable with the current vault key"))
    accounts = bank.connection_accounts(session, connection)
    counts = ", ".join(f"{a.name} ({a.iban or a.number or a.powens_id}): {len(bank.movements(session, a))} movement(s)"
                       for a in accounts)
    checks.append(Check("accounts", Verdict.OK if accounts else Verdict.WARN, counts or "no account read yet",
                        "" if accounts else "The first collection reads the accounts."))
    runs = session.exec(select(CollectionRun).where(CollectionRun.channel_id == channel.id)
                        .order_by(col(CollectionRun.started_at).desc(), col(CollectionRun.id).desc()).limit(50)).all()
    checks.append(_last_run("last run", channel, list(runs), None))
    return checks


def bank_status(state: str) -> Status:
    from connectors.powens import status_of_state

    return status_of_state(state)
