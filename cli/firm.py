"""``glaneur partner|firm|iban``: the accounting firms' side (per-IBAN statement connectors).

Changes act ``--as`` a known user of the firm with the profile the FAQ names; secrets come from a
hidden prompt or stdin, never from arguments.
"""

from __future__ import annotations

import typer

from cli import common
from glaneur.vocabulary import MIN_SECRET_CHARS

partner_app = common.group("Partner connectors (production tools) statements can go to.")
firm_app = common.group("An accounting firm's connectors and statement sources.")
iban_app = common.group("A firm's client IBANs: connector and mandate.")

SIGNING_SECRET = f"Signing secret (at least {MIN_SECRET_CHARS} characters)"  # the hidden prompts
API_TOKEN = f"API token (at least {MIN_SECRET_CHARS} characters)"
TOKEN_STDIN = typer.Option(False, "--token-stdin", help=f"Read the {API_TOKEN} from stdin.")


def _firm_actor(session, org: str):
    """The acting user, once ``org`` is known to be a firm (the firm's error comes first)."""
    from glaneur.statements import firm as firms

    return common.actor(session, firms.require_firm(session, org))


# -- partner connectors (platform) ------------------------------------------------------------------


@partner_app.command("add")
def partner_add(
    slug: str,
    name: str,
    url: str | None = typer.Option(None, "--url", help="Where the partner takes statements over HTTP (signed)."),
    secret_stdin: bool = typer.Option(
        False, "--secret-stdin", help=f"Read the signing secret (at least {MIN_SECRET_CHARS} characters) from stdin."
    ),
    support: str = typer.Option("", "--support", help="Whom firms contact when nothing arrives in the tool."),
) -> None:
    """Add a partner connector to the catalogue (the platform team's act). With --url, asks for its secret."""
    from glaneur.statements import firm as firms

    secret = common.read_secret(secret_stdin, SIGNING_SECRET) if url else None
    with common.session() as session:
        partner = firms.create_partner(session, slug, name, delivery_url=url, secret=secret, support_contact=support)
        how = f"HTTP to {partner.delivery_url} and" if partner.delivery_url else "only"
        common.say(f"Added partner connector {partner.slug} ({partner.name}): delivered {how} under partners/{slug}/.")


@partner_app.command("update")
def partner_update(
    slug: str,
    url: str | None = typer.Option(None, "--url", help="New delivery address."),
    secret_stdin: bool = typer.Option(False, "--secret-stdin", help="Read a new signing secret from stdin."),
    new_secret: bool = typer.Option(False, "--new-secret", help="Ask for a new signing secret (hidden prompt)."),
) -> None:
    """Change a partner's delivery address or signing secret."""
    from glaneur.statements import firm as firms

    asked = secret_stdin or new_secret
    secret = common.read_secret(secret_stdin, SIGNING_SECRET) if asked else None
    with common.session() as session:
        partner = firms.update_partner(session, slug, delivery_url=url, secret=secret)
        common.say(f"Updated partner connector {partner.slug}.")


@partner_app.command("list")
def partner_list() -> None:
    """The catalogue of partner connectors."""
    from glaneur.statements import firm as firms

    with common.session() as session:
        partners = firms.list_partners(session)
    common.print_rows(
        "Partner connectors",
        ("Slug", "Name", "Delivery", "Support"),
        [(p.slug, p.name, p.delivery_url or "storage only", p.support_contact or "-") for p in partners],
        empty="No partner connector yet: add one with 'glaneur partner add'.",
    )


# -- a firm's connectors and sources ("Cabinet(s)" page) -------------------------------------------------


@firm_app.command("connectors")
def firm_connectors(org: str) -> None:
    """The connectors associated with the firm."""
    from glaneur.statements import firm as firms

    with common.session() as session:
        found = firms.firm_connectors(session, common.read_org(session, org))
    common.print_rows(
        f"Connectors of {org}",
        ("Slug", "Name"),
        [(partner.slug, partner.name) for partner in found],
        empty=f"Firm {org} has no connector yet: a supervisor or administrator adds one with "
        "'glaneur firm connector-add'.",
    )


@firm_app.command("connector-add")
def firm_connector_add(org: str, partner: str) -> None:
    """Associate a connector with the firm (supervisor or administrator)."""
    from glaneur.statements import firm as firms

    with common.session() as session:
        firms.associate_connector(session, org, partner, actor=_firm_actor(session, org))
        common.say(f"Connector {partner} associated with {org}: its IBANs can now be attached to it.")


@firm_app.command("connector-remove")
def firm_connector_remove(org: str, partner: str) -> None:
    """Remove a connector from the firm (supervisor or administrator; refused while IBANs are attached to it)."""
    from glaneur.statements import firm as firms

    with common.session() as session:
        firms.remove_connector(session, org, partner, actor=_firm_actor(session, org))
        common.say(f"Connector {partner} removed from {org}.")


@firm_app.command("hold-warnings")
def firm_hold_warnings(
    org: str,
    hold: bool = typer.Option(
        ..., "--hold/--route", help="Hold statements read with warnings for review, or route them like the others (the default)."
    ),
) -> None:
    """Whether statements read with warnings wait for review (supervisor or administrator)."""
    from glaneur.statements import firm as firms

    with common.session() as session:
        firms.set_hold_statements_with_warnings(session, org, hold, actor=_firm_actor(session, org))
    common.say(
        f"Statements of {org} read with warnings are now "
        + ("held for review (glaneur statements release ORG ID)." if hold else "routed like the others.")
    )


@firm_app.command("source-add")
def firm_source_add(
    org: str,
    slug: str,
    url: str | None = typer.Option(None, "--url", help="The statement API's address (asks for the firm's token)."),
    token_stdin: bool = TOKEN_STDIN,
    inbox: str | None = typer.Option(None, "--inbox", help="An inbox name: files dropped under ORG/inbox/NAME/."),
) -> None:
    """Add where the firm's statement files come from (supervisor or administrator)."""
    from glaneur.statements import firm as firms

    token = common.read_secret(token_stdin, API_TOKEN) if url else None
    with common.session() as session:
        source = firms.add_statement_source(
            session, org, slug, url=url, token=token, inbox_prefix=inbox, actor=_firm_actor(session, org)
        )
        where = source.url if source.url else f"storage prefix {source.inbox_prefix}"
        common.say(f"Statement source {source.slug} added to {org}: {where}.")


@firm_app.command("source-token")
def firm_source_token(
    org: str,
    slug: str,
    token_stdin: bool = TOKEN_STDIN,
) -> None:
    """Enter a statement API's token again, e.g. when it can no longer be read (supervisor or administrator)."""
    from glaneur.statements import firm as firms

    token = common.read_secret(token_stdin, API_TOKEN)
    with common.session() as session:
        firms.replace_source_token(session, org, slug, token, actor=_firm_actor(session, org))
        common.say(f"Token of statement source {slug} of {org} replaced: the next routing reads it.")


@firm_app.command("sources")
def firm_sources(org: str) -> None:
    """The firm's statement sources, with their last poll and error."""
    from glaneur.statements import firm as firms

    with common.session() as session:
        found = firms.statement_sources(session, common.read_org(session, org))
    common.print_rows(
        f"Statement sources of {org}",
        ("Slug", "Kind", "Where", "Last polled (UTC)", "Last error"),
        [
            (source.slug, source.kind.value, source.url or source.inbox_prefix, common.when(source.last_polled_at),
             source.last_error or "-")
            for source in found
        ],
    )


# -- client IBANs ("IBAN" page) ------------------------------------------------------------------------------


@iban_app.command("add")
def iban_add(
    org: str,
    iban: str,
    client: str = typer.Option(..., "--client", help="The client's name."),
    bic: str | None = typer.Option(None, "--bic", help="The bank's BIC (found from the IBAN when known)."),
    mandate_reference: str = typer.Option("", "--mandate-ref", help="The mandate's reference."),
) -> None:
    """Register a client's IBAN (any firm profile). Its mandate starts pending."""
    from glaneur.statements import firm as firms

    with common.session() as session:
        row = firms.add_iban(session, org, iban, client, bic=bic, mandate_reference=mandate_reference,
                             actor=_firm_actor(session, org))
        common.say(f"IBAN {row.iban} of {row.client_name} added to {org}; mandate {row.mandate_status.value}.")


@iban_app.command("attach")
def iban_attach(org: str, iban: str, connector: str = typer.Argument(..., help="A connector slug, or 'none'.")) -> None:
    """Attach an IBAN to one of the firm's connectors, or to 'none' (Aucun connecteur). Any firm profile."""
    from glaneur.statements import firm as firms

    with common.session() as session:
        row = firms.attach_iban(session, org, iban, connector, actor=_firm_actor(session, org))
        if row.partner_id is None:
            common.say(f"IBAN {row.iban} has no connector: its statements go into {org}'s global statements file.")
        elif row.active:
            common.say(f"IBAN {row.iban} attached to {connector}: its statements go to that partner, "
                      "no longer into the global statements file.")
        else:
            common.say(f"IBAN {row.iban} attached to {connector}, but its mandate is {row.mandate_status.value}: "
                      "its statements go into the global file until the mandate is approved.", style="yellow")


@iban_app.command("mandate")
def iban_mandate(
    org: str,
    iban: str,
    status: str = typer.Argument(..., help="pending, approved or revoked."),
    reference: str | None = typer.Option(None, "--reference", help="The mandate's reference."),
) -> None:
    """Record an IBAN's mandate status (supervisor or administrator). Only an approved mandate makes it active."""
    from glaneur.statements import firm as firms

    with common.session() as session:
        row = firms.set_mandate(session, org, iban, status, reference=reference, actor=_firm_actor(session, org))
        common.say(f"Mandate of {row.iban}: {row.mandate_status.value}; IBAN {'active' if row.active else 'inactive'}.")


@iban_app.command("list")
def iban_list(org: str) -> None:
    """The firm's client IBANs with their connector and mandate."""
    from glaneur.statements import firm as firms

    with common.session() as session:
        rows = firms.list_ibans(session, common.read_org(session, org))
    common.print_rows(
        f"Client IBANs of {org}",
        ("IBAN", "Client", "Connector", "Mandate", "Active"),
        [
            (row.iban, row.client_name, partner.slug if partner else "none", row.mandate_status.value,
             "yes" if row.active else "no")
            for row, partner in rows
        ],
        empty=f"Firm {org} has no client IBAN yet: add one with 'glaneur iban add'.",
    )


