"""``glaneur init|org|user|binder``: the database, organisations, their users and binders."""

from __future__ import annotations

import typer

from cli import common
from glaneur.vocabulary import FirmRole, Right

org_app = common.group("Organisations (companies, accounting firms).")
user_app = common.group("Users of an organisation.")
binder_app = common.group("Binders (classeurs), where documents land.")


def init() -> None:
    """Create or upgrade the database (idempotent)."""
    from sqlalchemy.engine import make_url

    common.ensure_schema()
    url = make_url(common.settings().resolved_database_url).render_as_string(hide_password=True)
    common.say(f"Database ready: {url}")


@org_app.command("create")
def org_create(
    slug: str,
    name: str,
    firm: bool = typer.Option(False, "--firm", help="An accounting firm (cabinet): client IBANs and statements."),
) -> None:
    """Create an organisation (the platform team's act: no acting user needed)."""
    from glaneur import admin

    with common.session() as session:
        org = admin.create_organization(session, slug, name, "firm" if firm else "company")
        common.say(f"Created {'accounting firm' if firm else 'organisation'} {org.slug} ({org.name}).")


RIGHTS = typer.Option(
    [], "--right", help="Grant a right (repeat for several); configure_collection lets the user set up collectors."
)


@user_app.command("create")
def user_create(
    org: str,
    email: str,
    name: str,
    rights: list[Right] = RIGHTS,
    profile: FirmRole | None = typer.Option(
        None, "--profile", help="In an accounting firm: collaborator, supervisor or administrator."
    ),
) -> None:
    """Create a user of an organisation.

    The organisation's first user needs no acting user (bootstrap). Afterwards act (--as) as a user of
    the organisation holding configure_collection or configure_accounting; they grant only rights they hold,
    and no firm profile above their own.
    """
    from glaneur import admin

    with common.session() as session:
        actor = None if admin.bootstrapping(session, org) else common.actor(session, org)
        user = admin.create_user(session, org, email, name, rights, firm_role=profile, actor=actor)
        granted = user.rights.replace(",", ", ") or "no rights"
        role = f", profile {user.firm_role.value}" if user.firm_role else ""
        common.say(f"Created user {user.email} ({user.name}) in {org}: {granted}{role}.")


@user_app.command("update")
def user_update(
    org: str,
    email: str,
    new_email: str | None = typer.Option(None, "--email", help="The corrected e-mail address (their mails go there)."),
    name: str | None = typer.Option(None, "--name", help="The corrected name."),
) -> None:
    """Correct a user's profile: the e-mail address their mails go to, or their name.

    Act (--as) as the user themself, or as a user holding configure_collection or configure_accounting.
    A pending invitation goes to the corrected address once sent again (resend-invitation).
    """
    from glaneur import admin

    with common.session() as session:
        user = admin.update_user(session, org, email, new_email=new_email, name=name, actor=common.actor(session, org))
        common.say(f"User {user.email} ({user.name}) of {org} updated.")


@binder_app.command("create")
def binder_create(org: str, slug: str, name: str) -> None:
    """Create a binder (classeur de dépôt) in an organisation.

    Act (--as) as a user of the organisation holding configure_collection or configure_accounting
    (no acting user needed while the organisation has no user yet).
    """
    from glaneur import admin

    with common.session() as session:
        actor = None if admin.bootstrapping(session, org) else common.actor(session, org)
        binder = admin.create_binder(session, org, slug, name, actor=actor)
        common.say(f"Created binder {binder.slug} ({binder.name}) in {org}.")
