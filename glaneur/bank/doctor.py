"""``glaneur doctor`` for a bank channel: the POWENS page's checklist, from status to consent.

What support checks when movements do not arrive: the channel's status (and, before the first
movements, when they are expected), the connection's state at POWENS and what to do about it,
the holder's consent (who, when, which text; revoked or not), the Powens access in the vault
(decryptable, never shown), the accounts and their movements, the last run; and, for an IBAN that
also receives bank statements (the firm side), the latest statement against the movements.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlmodel import Session

from glaneur import bank
from glaneur.doctor import Check, Verdict, _last_run, _status
from glaneur.errors import GlaneurError, UsageError
from glaneur.models import Bank, BankConnection, BankConsentState, Channel, CollectionRun
from glaneur.statuses import Status, describe


def diagnose_bank(session: Session, channel: Channel, now: datetime, *,
                  powens_connectors: Callable[[], list] | None = None) -> list[Check]:
    """``powens_connectors`` asks POWENS for its list (from outside the domain); without it, the bank's POWENS
    connector is not checked."""
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
    if powens_connectors is not None:
        checks.append(_powens_connector(session, connection, powens_connectors))
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
    checks.extend(compare_with_statements(session, channel, accounts))
    runs = session.exec(select(CollectionRun).where(CollectionRun.channel_id == channel.id)
                        .order_by(col(CollectionRun.started_at).desc(), col(CollectionRun.id).desc()).limit(50)).all()
    checks.append(_last_run("last run", channel, list(runs), None))
    return checks


def _powens_connector(session: Session, connection: BankConnection, powens_connectors: Callable[[], list]) -> Check:
    """Whether POWENS still lists the channel's bank and accepts new connections to it (not ``restricted``)."""
    name = "POWENS bank"
    found = session.get(Bank, connection.bank_id)
    try:
        connectors = powens_connectors()
    except (GlaneurError, UsageError) as error:  # away, refusing, or not configured: said, never a crash
        said = error.user_message if isinstance(error, GlaneurError) else str(error)
        return Check(name, Verdict.WARN, f"POWENS could not be asked for its list of banks ({said})",
                     "Check GLANEUR_POWENS_API_URL and that POWENS answers, then run doctor again.")
    connector = next((c for c in connectors if c.id == connection.powens_connector_id), None)
    connector = connector or bank.find_connector(found, connectors)
    problem = bank.connector_problem(found, connector)
    if problem is None:
        return Check(name, Verdict.OK, f"'{connector.name}' (POWENS connector {connector.id}) accepts new connections")
    what, advice = problem
    if connection.powens_connection_id is None:
        return Check(name, Verdict.FAIL, f"{what} The connection this channel waits for would be refused.", advice)
    return Check(name, Verdict.WARN, f"{what} POWENS connection {connection.powens_connection_id} keeps collecting, "
                 "but a new one (after a revocation, or for a new channel) would be refused.", advice)


def bank_status(state: str) -> Status:
    from glaneur.bank.states import status_of_state

    return status_of_state(state)


MAX_LISTED = 5  # differences named one by one in a check; the rest are counted


def compare_with_statements(session: Session, channel: Channel, accounts: list) -> list[Check]:
    """For each account whose IBAN also receives statements: the latest statement's entries and balances
    against the movements POWENS gave for the same days, and what is missing on either side.

    An entry and a movement match on the amount and a date (the statement's value or booking date is
    one of the movement's booking, value or real dates). Movements not booked yet or deleted do not
    count. The closing balance is compared with POWENS' balance less the movements booked after the
    statement's end (the balance moved since).
    """
    from decimal import Decimal

    from sqlmodel import col, select

    from glaneur.models import Statement
    from glaneur.settings import get_settings
    from glaneur.statements.model import StatementFileError
    from glaneur.statements.parse import parse_statement_file
    from glaneur.storage import get_storage

    checks = []
    for account in accounts:
        if not account.iban:
            continue
        statement = session.exec(select(Statement).where(
            Statement.organization_id == channel.organization_id, Statement.iban == account.iban)
            .order_by(col(Statement.period_end).desc(), col(Statement.id).desc())).first()
        if statement is None or statement.period_start is None or statement.period_end is None:
            continue
        name = f"statement {account.iban}"
        try:
            parsed = [p for p in parse_statement_file(get_storage(get_settings()).get(statement.storage_key))
                      if p.iban == account.iban and p.statement_id == statement.statement_ref]
        except (StatementFileError, OSError, KeyError) as error:
            checks.append(Check(name, Verdict.WARN, f"statement {statement.statement_ref} cannot be read again "
                                f"({type(error).__name__})", "Check the storage; the comparison is skipped."))
            continue
        if not parsed:
            continue
        entries = list(parsed[0].movements)
        booked = [m for m in bank.movements(session, account) if not m.coming and not m.deleted]
        window = [m for m in booked if statement.period_start <= m.booking_date <= statement.period_end]
        unmatched = list(window)
        missing_in_powens = []
        for entry in entries:
            found = next((m for m in unmatched if Decimal(m.amount) == entry.amount
                          and entry.day in (m.booking_date, m.value_date, m.real_date)), None)
            if found is None:
                missing_in_powens.append(entry)
            else:
                unmatched.remove(found)
        problems = []
        if missing_in_powens:
            named = ", ".join(f"{e.day} {e.amount:+} {e.reference or '-'}" for e in missing_in_powens[:MAX_LISTED])
            problems.append(f"{len(missing_in_powens)} statement entr(y/ies) without a POWENS movement ({named}"
                            f"{', ...' if len(missing_in_powens) > MAX_LISTED else ''})")
        if unmatched:
            named = ", ".join(f"{m.booking_date} {m.amount} {m.wording}" for m in unmatched[:MAX_LISTED])
            problems.append(f"{len(unmatched)} POWENS movement(s) not in the statement ({named}"
                            f"{', ...' if len(unmatched) > MAX_LISTED else ''})")
        if account.balance is not None:
            later = sum((Decimal(m.amount) for m in booked if m.booking_date > statement.period_end), Decimal(0))
            expected = Decimal(account.balance) - later
            if expected != Decimal(statement.closing_balance):
                problems.append(f"closing balance {statement.closing_balance} in the statement, {expected} from "
                                f"POWENS on {statement.period_end}")
        period = f"{statement.period_start} to {statement.period_end}"
        if problems:
            checks.append(Check(name, Verdict.WARN, f"statement {statement.statement_ref} ({period}): "
                                + "; ".join(problems),
                                "A movement may still be coming at POWENS, or the statement is partial: compare "
                                "again after the next collection; if it stays, tell the bank or support."))
        else:
            checks.append(Check(name, Verdict.OK, f"statement {statement.statement_ref} ({period}): its "
                                f"{len(entries)} entries and closing balance match the POWENS movements"))
    return checks
