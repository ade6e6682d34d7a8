"""What every command group shares: the acting user, sessions, and how things are printed.

Bad input surfaces as a :class:`~glaneur.errors.UsageError`, caught in one place (:class:`Root`) and
printed as one red ``Error: ...`` line on stderr, exit code 2, no traceback. Text that comes from
users, portals or files is printed without Rich markup and stripped of control characters, so that
a label like ``[bold]`` stays a label and no escape sequence reaches the terminal.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from glaneur.errors import UsageError
from glaneur.statuses import Status

if TYPE_CHECKING:
    from sqlmodel import Session

    from glaneur.doctor import DeploymentLookup
    from glaneur.models import Channel, Organization, User

USAGE_EXIT = 2  # bad input, as Click's own usage errors
FAILED_EXIT = 1  # a collection that did not end ok


class Root(TyperGroup):
    """The one place where a person's mistake becomes a red line instead of a traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as error:
            error_line(str(error))
            raise typer.Exit(USAGE_EXIT) from None


def group(help_text: str) -> typer.Typer:
    """A command group: shows its help when called without a command."""
    return typer.Typer(no_args_is_help=True, help=help_text)


# The root command's --as, for the commands of this invocation (set on every invocation).
acting_user: ContextVar[str | None] = ContextVar("acting_user", default=None)

_migrated: set[str] = set()


def settings():
    from glaneur.settings import get_settings

    return get_settings()


def ensure_schema() -> None:
    """Migrate once per process and database: every command can run on a fresh machine."""
    from glaneur import db

    url = settings().resolved_database_url
    if url not in _migrated:
        db.migrate()
        _migrated.add(url)


@contextmanager
def session() -> Iterator[Session]:
    import connectors.catalog  # noqa: F401  installs the provider catalogue the domain looks providers up in
    from glaneur import db

    ensure_schema()
    with db.session_scope() as opened:
        yield opened


# -- printing ---------------------------------------------------------------------------------------

# C0 and C1 control characters but tab and newline: ESC starts terminal escape sequences.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(value: object) -> str:
    """Text from outside (a portal, a file, a user), safe to print: no control character survives."""
    return _CONTROL.sub("\N{REPLACEMENT CHARACTER}", "" if value is None else str(value))


def out() -> Console:
    # Built per call: Rich reads the terminal width (COLUMNS) when a console is created.
    return Console(highlight=False)


def error_line(message: str) -> None:
    Console(stderr=True, highlight=False).print(f"Error: {clean(message)}", style="red", markup=False, soft_wrap=True)


def say(message: str, style: str = "green") -> None:
    out().print(clean(message), style=style, markup=False, soft_wrap=True)


STATUS_STYLES = {
    Status.OK: "green",
    Status.MORE_TO_COLLECT: "cyan",
    Status.NEW: "cyan",
    Status.RUNNING: "cyan",
    Status.AWAITING_CREDENTIALS: "yellow",
    Status.AWAITING_SECOND_FACTOR: "yellow",
    Status.PORTAL_UNAVAILABLE: "yellow",
    Status.RATE_LIMITED: "yellow",
}


def status_text(value: Status | str) -> Text:
    try:
        status = Status(value)
    except ValueError:  # a summary from a newer flow: show it as it came
        return Text(clean(value), style="red")
    return Text(status.value, style=STATUS_STYLES.get(status, "red"))


def cell(value: object) -> Text:
    """User data never goes through Rich markup: a label like '[bold]' stays a label."""
    return value if isinstance(value, Text) else Text(clean(value))


def table(title: str, *columns: str) -> Table:
    """Narrow terminals fold long words rather than cut them with '…': slugs and statuses are copied.

    The first column (the slug or the date people look for) is never folded mid-word.
    """
    made = Table(title=clean(title))
    for index, name in enumerate(columns):
        made.add_column(name, overflow="fold", no_wrap=index == 0)
    return made


def print_rows(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]], *, empty: str = "") -> None:
    """``rows`` as a table, each value a :func:`cell`; with no row and an ``empty`` line, that line in yellow instead."""
    if not rows and empty:
        say(empty, style="yellow")
        return
    made = table(title, *columns)
    for row in rows:
        made.add_row(*map(cell, row))
    out().print(made)


def status_and_message(status: Status | str, message: str) -> Text:
    """The status, and under it what to do: one cell, so that the advice gets the width it needs."""
    text = status_text(status)
    if message:
        text.append("\n" + clean(message), style="default")
    return text


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


# -- who acts ---------------------------------------------------------------------------------------


def acting_email_if_any() -> str | None:
    """The acting user's address (--as, else GLANEUR_ACTING_USER); None at the platform team's console."""
    email = acting_user.get() or settings().acting_user
    return email if email and email.strip() else None


def acting_email() -> str:
    email = acting_email_if_any()
    if email is None:
        raise UsageError(
            "this command changes data or starts work, so it must act as a known user: put --as EMAIL before the "
            "command (glaneur --as you@example.com ...) or set GLANEUR_ACTING_USER."
        )
    return email


def readable(opened: Session) -> set[int] | None:
    """The organisations a read may show: the acting user's, when there is one (--as); None (all of them)
    for the platform team at the console, with no acting user."""
    from glaneur import admin

    email = acting_email_if_any()
    return None if email is None else admin.readable_organizations(opened, email)


def readable_within(opened: Session, *, org: str | None = None, channel: str | None = None) -> set[int] | None:
    """:func:`readable`, once the organisation or channel a listing is narrowed to (if any) is known to be readable."""
    if org is not None:
        read_org(opened, org)
    if channel is not None:
        read_channel(opened, channel)
    return readable(opened)


def read_org(opened: Session, org: Organization | str) -> Organization:
    """``org``, when the acting user (if any) may read it; else a refusal that shows nothing of ``org``."""
    from glaneur import admin

    return admin.require_reader(opened, readable(opened), org, acting_email_if_any())


def read_channel(opened: Session, channel: str) -> Channel:
    """A channel (deleted ones too: their history stays readable), when the acting user (if any) may read it."""
    from sqlmodel import col, select

    from glaneur import admin
    from glaneur.admin.lookups import LIVE
    from glaneur.models import Channel

    scope = readable(opened)
    if scope is None:
        return admin.get_channel(opened, channel, deleted_ok=True)
    slug = channel.strip()
    found = opened.exec(select(Channel).where(Channel.slug == slug)).first()
    if found is None or found.organization_id not in scope:
        own = opened.exec(
            select(Channel.slug).where(col(Channel.organization_id).in_(scope), *LIVE).order_by(Channel.slug)
        ).all()
        raise UsageError(  # the same words whether or not another organisation has this channel
            f"unknown channel '{slug}' for user '{acting_email_if_any()}', who reads only its "
            f"own organisation's channels: {admin.names_or_none(own)}."
        )
    return found


def actor(opened: Session, org: Organization | str) -> User:
    """The acting user, as a user of ``org`` (the same address may belong to several organisations)."""
    from glaneur import admin

    return admin.get_actor(opened, org, acting_email())


def read_secrets(password_stdin: bool, with_totp: bool) -> tuple[str, str | None]:
    """The password (and TOTP seed) from a hidden prompt, or from stdin's first (and second) line."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        seed = None
        if with_totp:
            seed = sys.stdin.readline().rstrip("\r\n")
            if not seed:
                raise UsageError("--with-totp and --password-stdin: put the TOTP seed on the second line of stdin.")
        return password, seed
    password = typer.prompt("Password", hide_input=True)
    seed = typer.prompt("TOTP seed (base32)", hide_input=True) if with_totp else None
    return password, seed


def read_secret(from_stdin: bool, prompt: str) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt(prompt, hide_input=True)


def require_deployment(name: str, *, nothing: str, what: str, then: str) -> DeploymentLookup:
    """Refuse, before anything is created or sent, a command whose long wait runs on a missing Prefect deployment;
    the lookup (with its workers online) when it is there.

    ``nothing`` says what was not done, ``what`` names the run that waits, ``then`` what to start besides a worker.
    """
    from tasks.deployments import lookup_deployment

    lookup = lookup_deployment(name)
    if not lookup.deployment:
        problem = lookup.error or f"{lookup.where} has no such deployment"
        raise UsageError(
            f"{nothing} {what} wait for days without holding a process, so they run on the Prefect deployment "
            f"'{name}', but {problem}. Deploy the flows (make deploy: the work pool, the provider limits, then every "
            f"deployment), start a worker (prefect worker start --pool glaneur){then}, then invite again."
        )
    return lookup


def confirm_or_stop(yes: bool, question: str, nothing: str) -> None:
    """Go on when ``yes`` (--yes) or the person answers yes; else say ``nothing`` and exit 1, nothing changed."""
    if not yes and not typer.confirm(question, default=False):
        say(nothing, style="yellow")
        raise typer.Exit(FAILED_EXIT)
