"""``glaneur doctor --iban IBAN``: the FAQ's checklist when statements do not reach the production tool.

("Que devez-vous vérifier si les relevés bancaires ne sont pas récupérés dans votre outil de
production ?") 1. a connector is associated with the firm; 2. the IBAN is attached to a connector;
3. the mandate is approved, so the IBAN is active; then what arrived lately and where it went;
4. if everything is right and nothing arrives, whom to contact. Read only.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from glaneur.doctor import Check, Verdict
from glaneur.errors import UsageError
from glaneur.statements.firm import firm_connectors, normalize_iban, require_firm
from glaneur.models import (
    ClientIban,
    DeliveryState,
    MandateStatus,
    Organization,
    PartnerConnector,
    Statement,
    StatementRoute,
)
from glaneur.statements.routing import StatementEntry, UnreadableSecret, partner_secret, warnings_of

RECENT = 3
PLATFORM_SUPPORT = "Glaneur's support (your platform team)"


def _firm_of(session: Session, iban: str, org: str | None, organizations: set[int] | None) -> Organization:
    if org is not None:
        return require_firm(session, org)
    among = () if organizations is None else (col(Organization.id).in_(organizations),)
    found = session.exec(
        select(Organization).join(ClientIban, col(ClientIban.organization_id) == col(Organization.id))
        .where(ClientIban.iban == iban, *among).order_by(Organization.slug)
    ).all()
    if not found:
        found = session.exec(
            select(Organization).join(Statement, col(Statement.organization_id) == col(Organization.id))
            .where(Statement.iban == iban, *among).distinct().order_by(Organization.slug)
        ).all()
    if len(found) == 1:
        return found[0]
    if not found:
        raise UsageError(f"no firm has IBAN {iban} nor received a statement for it: say which firm with --org.")
    raise UsageError(f"IBAN {iban} is known to several firms ({', '.join(o.slug for o in found)}): say which with --org.")


def diagnose_iban(
    session: Session, iban: str, org: str | None = None, *, organizations: set[int] | None = None
) -> list[Check]:
    """The checks of a firm's client IBAN; the firm found among ``organizations`` only, when given (a reader's)."""
    compact = normalize_iban(iban)
    firm = _firm_of(session, compact, org, organizations)
    connectors = firm_connectors(session, firm)
    client = session.exec(
        select(ClientIban).where(ClientIban.organization_id == firm.id, ClientIban.iban == compact)
    ).first()
    partner = session.get(PartnerConnector, client.partner_id) if client and client.partner_id else None
    checks = [_associated(firm, connectors)]
    if client is None:
        aside = session.exec(
            select(Statement.id).where(Statement.organization_id == firm.id, Statement.iban == compact,
                                       Statement.route == StatementRoute.ASIDE)
        ).all()
        checks.append(Check(
            "IBAN registered", Verdict.FAIL,
            f"{compact} is not one of {firm.slug}'s client IBANs; {len(aside)} statement(s) for it are kept aside.",
            f"add it: glaneur iban add {firm.slug} {compact} --client NAME; the kept statements are routed next run.",
        ))
        return checks
    checks.append(_attached(firm, client, partner, connectors))
    if partner is not None and partner.delivery_url:
        checks.append(_secret_readable(session, partner))
    checks.append(_mandate(client))
    checks.extend(_recent(session, firm, client, partner))
    checks.append(_contact(checks, partner))
    return checks


def _associated(firm: Organization, connectors: list[PartnerConnector]) -> Check:
    if not connectors:
        return Check("1. Connector associated with the firm", Verdict.FAIL, f"firm {firm.slug} has no connector.",
                     f"a supervisor or administrator adds one: glaneur firm connector-add {firm.slug} CONNECTOR.")
    return Check("1. Connector associated with the firm", Verdict.OK,
                 f"{len(connectors)} connector(s): {', '.join(p.slug for p in connectors)}.")


def _attached(firm: Organization, client: ClientIban, partner: PartnerConnector | None,
              connectors: list[PartnerConnector]) -> Check:
    name = "2. IBAN attached to a connector"
    if partner is None:
        return Check(name, Verdict.FAIL,
                     f"{client.iban} ({client.client_name}) has no connector: its statements go into the global file.",
                     f"attach it: glaneur iban attach {firm.slug} {client.iban} CONNECTOR.")
    if partner.id not in {p.id for p in connectors}:
        return Check(name, Verdict.FAIL, f"attached to {partner.slug}, which is no longer associated with the firm.",
                     f"a supervisor or administrator associates {partner.slug} again, or attach the IBAN elsewhere.")
    return Check(name, Verdict.OK, f"attached to {partner.slug} ({partner.name}).")


def _secret_readable(session: Session, partner: PartnerConnector) -> Check:
    """Deliveries are signed with the partner's secret: one that the vault cannot give back stops them all."""
    name = "2b. Partner's signing secret readable"
    if partner.secret_ref is None:
        return Check(name, Verdict.FAIL, f"{partner.slug} has no signing secret: nothing can be sent to it.",
                     f"the platform team sets it: glaneur partner update {partner.slug} --new-secret.")
    try:
        partner_secret(session, partner)
    except UnreadableSecret:
        return Check(name, Verdict.FAIL,
                     f"{partner.slug}'s signing secret cannot be read from Glaneur's vault (damaged entry, or another "
                     "vault key): nothing is sent to it, its statements wait.",
                     f"the platform team enters it again: glaneur partner update {partner.slug} --new-secret; "
                     "the waiting statements are sent on the next run.")
    return Check(name, Verdict.OK, f"{partner.slug}'s signing secret can be read.")


def _mandate(client: ClientIban) -> Check:
    name = "3. Mandate approved, IBAN active"
    if client.mandate_status == MandateStatus.APPROVED:
        return Check(name, Verdict.OK, "mandate approved: the IBAN is active.")
    fix = {
        MandateStatus.PENDING: "the client signs the mandate and the bank approves it; then record it: "
                               f"glaneur iban mandate ORG {client.iban} approved.",
        MandateStatus.REVOKED: "the mandate was revoked: the client signs a new one, then record it as approved.",
    }[client.mandate_status]
    return Check(name, Verdict.FAIL,
                 f"mandate {client.mandate_status.value}: the IBAN is not active, its statements go to the global file.",
                 fix)


def _recent(session: Session, firm: Organization, client: ClientIban, partner: PartnerConnector | None) -> list[Check]:
    rows = session.exec(
        select(Statement).where(Statement.organization_id == firm.id, Statement.iban == client.iban)
        .order_by(col(Statement.received_at).desc(), col(Statement.id).desc()).limit(RECENT)
    ).all()
    if not rows:
        return [Check("Last statements received", Verdict.WARN, "no statement received for this IBAN yet.",
                      "check the firm's statement sources (glaneur firm sources ORG) and that the bank sends them.")]
    names = {p.id: p.slug for p in session.exec(select(PartnerConnector)).all()}
    checks = []
    for statement in rows:
        entry = StatementEntry(statement, client.client_name, names.get(statement.partner_id))
        verdict, fix = Verdict.OK, ""
        if statement.route == StatementRoute.PARTNER and statement.delivery_state != DeliveryState.DELIVERED:
            verdict = Verdict.FAIL if statement.delivery_state == DeliveryState.REFUSED else Verdict.WARN
            if statement.delivery_receipt is not None:
                fix = ("the partner has it; its copy under the partner's storage prefix is written on the next run "
                       "(nothing is sent again). If this lasts, check the storage settings.")
            elif verdict == Verdict.FAIL:
                fix = "the partner refused it: check its address and secret (glaneur partner update); retried next run."
            else:
                fix = "the partner has not acknowledged it yet; retried on every run (see the reason above)."
        warnings = warnings_of(statement)
        if warnings and verdict == Verdict.OK:
            verdict = Verdict.WARN
            fix = ("check the statement with the bank or the client; "
                   + (f"release it: glaneur statements release {firm.slug} {statement.id}."
                      if statement.route == StatementRoute.HELD else "it was routed all the same."))
        noted = "".join(f" Warning {w['code']}: {w['message']}." for w in warnings)
        checks.append(Check(
            f"Statement {statement.period_start} → {statement.period_end}", verdict,
            f"received {statement.received_at:%Y-%m-%d %H:%M}, closing {statement.closing_balance} "
            f"{statement.currency}: {entry.destination}.{noted}", fix,
        ))
    return checks


def _contact(checks: list[Check], partner: PartnerConnector | None) -> Check:
    name = "4. Whom to contact"
    if any(check.verdict == Verdict.FAIL for check in checks):
        return Check(name, Verdict.WARN, "fix the failed checks above first.")
    who = partner.name if partner else "the firm"
    tool = f"; {partner.name}'s own support: {partner.support_contact}" if partner and partner.support_contact else ""
    return Check(name, Verdict.OK, f"everything is in order on Glaneur's side for {who}.",
                 f"if nothing shows in the production tool, contact {PLATFORM_SUPPORT} with the receipt numbers "
                 f"above{tool}.")
