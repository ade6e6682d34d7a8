"""``glaneur doctor CHANNEL``: the checks a support agent walks through when invoices do not arrive.

("Vos factures n'apparaissent pas : que faire ? Vérifiez le statut du collecteur, identifiez le
message d'erreur affiché.") Each check ends with a verdict (ok, warn, fail), what was found and,
when something is wrong, the fix in plain words, taken from the status table where a status is
involved. Secrets are decrypted to prove the vault key still reads them, never shown.

Diagnosis only reads, but the vault's first use may write (its canary, purging an expired entry):
:func:`diagnose` never commits, and its caller rolls the session back.

The domain never talks to Prefect: the caller passes ``deployments``, a function that asks the
Prefect server about a deployment (:func:`tasks.deployments.lookup_deployment`, through Prefect's
own client, with a short timeout); an unreachable server is a warning, never a crash. Providers are
looked up in the catalogue the connectors install (:mod:`glaneur.providers`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from glaneur import admin, providers
from glaneur.errors import ConfigurationError, SecretUnreadable, UsageError
from glaneur.invoices import invitations as invites
from glaneur.models import (
    MAX_ACCOUNTS_PER_CHANNEL,
    Account,
    Channel,
    ChannelKind,
    CollectionRun,
    Invitation,
    InvitationState,
    Organization,
    User,
)
from glaneur.settings import Settings, get_settings
from glaneur.statuses import Status, describe

DISPATCH_DEPLOYMENT = "dispatch-daily/dispatch-daily"
COLLECT_DEPLOYMENT = "collect-channel/collect-channel"
PREFECT_TIMEOUT_SECONDS = 5.0
DEPLOY_HINT = "deploy Glaneur's flows (make deploy: the work pool, the provider limits, then every deployment) and start a worker"
SPAM_ADVICE = (
    "check the address in their profile and the spam folder "
    "(« Vérifiez l'adresse mail renseignée dans son profil et consultez le dossier spam »)"
)


class Verdict(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    detail: str  # what was found; never a secret
    fix: str = ""  # what to do, when something is wrong


# -- what the Prefect server said (asked from outside the domain) ----------------------------------------


@dataclass(frozen=True)
class DeploymentLookup:
    """What the Prefect server said about a deployment."""

    api_url: str | None  # None: no Prefect server configured (PREFECT_API_URL unset)
    reachable: bool
    deployment: dict | None = None  # the deployment as the API returns it; None when absent or unknown
    workers_online: int | None = None  # online workers of its work pool; None when unknown
    error: str = ""

    @property
    def where(self) -> str:
        return f"the Prefect server at {self.api_url}" if self.api_url else "no Prefect server"


# -- the checks ------------------------------------------------------------------------------------------------


def diagnose(
    session: Session,
    channel: str,
    *,
    settings: Settings | None = None,
    now: datetime | None = None,
    deployments: Callable[[str], DeploymentLookup] | None = None,
    powens_connectors: Callable[[], list] | None = None,
    serve_answers: Callable[[str], str | None] | None = None,
) -> list[Check]:
    """The checks of one channel, in the order a support agent walks them. Never commits.

    ``deployments`` asks the Prefect server about a deployment by name; without it the next run is
    computed only. ``powens_connectors`` asks POWENS for its list of connectors (a bank channel's bank
    still listed, and not restricted); without it that check is left out. ``serve_answers`` asks
    ``glaneur serve`` at a base URL whether it answers (None when it does, else what failed): a waiting
    invitation's link points there; without it that check is left out.
    """
    settings = settings or get_settings()
    now = now or datetime.now(UTC)
    found = admin.get_channel(session, channel, deleted_ok=True)
    if found.kind == ChannelKind.BANK:
        from glaneur.bank.doctor import diagnose_bank  # the POWENS page's checklist

        return diagnose_bank(session, found, now, powens_connectors=powens_connectors)
    if admin.is_deleted(found):
        return [_deleted(session, found)]
    accounts = admin.channel_accounts(session, found)
    invitation = session.exec(
        select(Invitation).where(Invitation.channel_id == found.id).order_by(col(Invitation.id).desc())
    ).first()
    checks = [_status(session, found), _provider(found), _accounts(found, accounts, invitation)]
    checks += _credentials(session, found, accounts, now)
    checks += _last_runs(session, found, accounts)
    checks.append(_invitation(session, invitation, now))
    if serve_answers is not None and invitation is not None and invites.is_open(invitation):
        checks.append(_holder_link(settings, serve_answers))
    checks.append(_next_run(found, settings, now, deployments))
    return checks


def _deleted(session: Session, channel: Channel) -> Check:
    documents = admin.count_documents(session, channel)
    when = f" on {channel.deleted_at:%Y-%m-%d %H:%M} UTC" if channel.deleted_at else ""
    return Check(
        "channel",
        Verdict.FAIL,
        f"{channel.slug} was deleted{when} (définitivement désactivé): it no longer collects and its credentials "
        f"were purged; its {documents} document(s) and its history are kept.",
        "Create a new channel to collect from this supplier again.",
    )


def verdict_of(status: Status | str) -> Verdict:
    """ok for ok; warn while waiting or retrying by itself; fail when a person or the team must act."""
    status = Status(status)
    if status == Status.OK:
        return Verdict.OK
    info = describe(status)
    waiting = {Status.NEW, Status.RUNNING, Status.MORE_TO_COLLECT, Status.AWAITING_CREDENTIALS,
               Status.AWAITING_SECOND_FACTOR}
    return Verdict.WARN if info.retried or status in waiting else Verdict.FAIL


def _status(session: Session, channel: Channel) -> Check:
    org = session.get(Organization, channel.organization_id)
    status = Status(channel.status)
    since = f" since {channel.status_changed_at:%Y-%m-%d %H:%M} UTC" if channel.status_changed_at else ""
    message = channel.status_message or describe(status).message
    return Check(
        "status",
        verdict_of(status),
        f"{channel.slug} ({channel.label}, organisation {org.slug}): {status.value}{since}. {message}",
        "" if status == Status.OK else describe(status).message,
    )


def _provider(channel: Channel) -> Check:
    try:
        entry = providers.get_provider(channel.provider)
    except UsageError as error:
        return Check(
            "provider",
            Verdict.FAIL,
            f"provider '{channel.provider}' is no longer in the catalogue ({error})",
            "Create a channel with a provider of the catalogue ('glaneur providers'), or ask for a new "
            "collector ('Demander l'ajout d'un collecteur').",
        )
    if not entry.compatible:
        return Check(
            "provider",
            Verdict.FAIL,
            f"{entry.name} ({entry.slug}) is not compatible with automatic collection. {entry.description}".strip(),
            describe(Status.NOT_COMPATIBLE).message,
        )
    if entry.engine == "playwright" and entry.slug not in providers.connectors():
        return Check(
            "provider",
            Verdict.FAIL,
            f"{entry.name} ({entry.slug}) is listed as compatible but has no connector in this installation",
            "Update Glaneur (the connector ships with it), or tell support.",
        )
    factors = ", ".join(str(kind) for kind in entry.second_factor_kinds) or "none"
    if entry.platform and not channel.portal_url:
        return Check(
            "provider",
            Verdict.FAIL,
            f"{entry.name} ({entry.slug}) is a platform run by each supplier at its own address, and this "
            "channel has no portal address",
            "Create the channel again with --portal-url https://... (the supplier's portal).",
        )
    try:
        where = f", portal {providers.portal_url(entry.slug, channel.portal_url)}"
    except UsageError:
        where = ""
    return Check(
        "provider",
        Verdict.OK,
        f"{entry.name} ({entry.slug}): compatible; login fields {', '.join(entry.login_fields)}; "
        f"second factor: {factors}{where}",
    )


def _accounts(channel: Channel, accounts: list[Account], invitation: Invitation | None) -> Check:
    logins = ", ".join(account.login for account in accounts)
    if not accounts:
        if invitation is not None and invitation.state == InvitationState.PENDING:
            return Check(
                "accounts",
                Verdict.WARN,
                f"no account yet: the credentials are awaited from {invitation.email} (invitation below)",
                "Wait for the account holder to answer the invitation, or enter the credentials yourself.",
            )
        return Check(
            "accounts",
            Verdict.FAIL,
            "no account: the channel has no credentials, so nothing is collected",
            f"Add an account: glaneur channel account-add {channel.slug} --login LOGIN "
            "(or send the request to the account holder).",
        )
    if len(accounts) > MAX_ACCOUNTS_PER_CHANNEL:
        return Check(
            "accounts",
            Verdict.FAIL,
            f"{len(accounts)} accounts ({logins}): more than the {MAX_ACCOUNTS_PER_CHANNEL} a collector holds",
            "Move the extra accounts to another channel.",
        )
    return Check("accounts", Verdict.OK, f"{len(accounts)} of {MAX_ACCOUNTS_PER_CHANNEL}: {logins}")


def _credentials(session: Session, channel: Channel, accounts: list[Account], now: datetime) -> list[Check]:
    from glaneur.vault import (
        Vault,  # the key loads only when there is something to decrypt
    )

    if not accounts:
        return []
    update = f"glaneur channel update-credentials {channel.slug} --login {{login}}"
    try:
        vault = Vault(session)
    except ConfigurationError as error:
        return [
            Check(f"credentials {account.login}", Verdict.FAIL, "the vault key cannot be loaded", str(error))
            for account in accounts
        ]
    checks = []
    for account in accounts:
        name = f"credentials {account.login}"
        fix = f"Enter the credentials again: {update.format(login=account.login)}."
        if account.secret_ref is None:
            checks.append(Check(name, Verdict.FAIL, "no password stored", fix))
            continue
        problem = None
        for what, ref in (("password", account.secret_ref), ("TOTP seed", account.totp_ref)):
            if ref is None:
                continue
            try:
                readable = vault.get(ref) is not None  # decrypted to prove the key reads it; never kept
            except (ConfigurationError, SecretUnreadable) as error:
                problem = Check(
                    name,
                    Verdict.FAIL,
                    f"the {what} is stored but cannot be decrypted with the current vault key",
                    f"{error} {fix}",
                )
                break
            except LookupError:
                problem = Check(name, Verdict.FAIL, f"the {what}'s vault entry is missing", fix)
                break
            if not readable:
                problem = Check(name, Verdict.FAIL, f"the stored {what} has expired", fix)
                break
        if problem is not None:
            checks.append(problem)
            continue
        totp = "TOTP seed too" if account.totp_ref is not None else "no TOTP seed"
        checks.append(Check(name, Verdict.OK, f"password stored and decryptable with the current vault key; {totp}"))
    return checks


def _last_runs(session: Session, channel: Channel, accounts: list[Account]) -> list[Check]:
    runs = session.exec(
        select(CollectionRun)
        .where(CollectionRun.channel_id == channel.id)
        .order_by(col(CollectionRun.started_at).desc(), col(CollectionRun.id).desc())
        .limit(200)
    ).all()
    checks = []
    for account in accounts:
        mine = [run for run in runs if run.account_id == account.id]
        checks.append(_last_run(f"last run {account.login}", channel, mine, account))
    without_account = [run for run in runs if run.account_id is None]
    newest_account_run = max((run.started_at for run in runs if run.account_id is not None), default=None)
    if without_account and (newest_account_run is None or without_account[0].started_at > newest_account_run):
        checks.append(_last_run("last run", channel, without_account, None))
    if not checks:
        checks.append(_last_run("last run", channel, [], None))
    return checks


def _last_run(name: str, channel: Channel, runs: list[CollectionRun], account: Account | None) -> Check:
    if not runs:
        return Check(
            name,
            Verdict.WARN,
            "never collected",
            "The first collection starts within the hour after the credentials are entered; "
            f"start it now with: glaneur run {channel.slug}.",
        )
    last = runs[0]
    status = Status(last.status)
    message = last.message or describe(status).message
    detail = f"{last.started_at:%Y-%m-%d %H:%M} UTC: {status.value}"
    if status == Status.OK:
        detail += f", {last.new_documents} new, {last.already_had} already had"
    else:
        failing = next((i for i, run in enumerate(runs) if run.status == Status.OK), len(runs))
        if failing > 1:
            detail += f" ({failing} runs in a row)"
        detail += f". {message}"
        if last.evidence_keys:
            detail += f" Screenshot and trace kept: {last.evidence_keys.replace(',', ', ')}."
    if account is not None and status != Status.OK:
        success = f"{account.last_success_at:%Y-%m-%d}" if account.last_success_at else "never"
        detail += f" Last success: {success}."
    if last.flow_run_id:
        detail += f" Flow run {last.flow_run_id}."
    return Check(name, verdict_of(status), detail, "" if status == Status.OK else describe(status).message)


def _holder_link(settings: Settings, serve_answers: Callable[[str], str | None]) -> Check:
    """The waiting invitation's link opens the holder's form at ``glaneur serve``: it must answer there."""
    base = settings.evidence_url.rstrip("/")
    failed = serve_answers(base)
    if failed is None:
        return Check("holder's form", Verdict.OK, f"glaneur serve answers at {base}, where the invitation's link points")
    return Check(
        "holder's form",
        Verdict.FAIL,
        f"the invitation's link points to {base}, where glaneur serve does not answer ({failed}): the account "
        "holder cannot open the form",
        "Start it there (glaneur serve --host HOST --port PORT, behind HTTPS), or set GLANEUR_EVIDENCE_URL to the "
        "address where it runs, then send the invitation again.",
    )


def _invitation(session: Session, invitation: Invitation | None, now: datetime) -> Check:
    if invitation is None:
        return Check("invitation", Verdict.OK, "none sent: the credentials were entered directly")
    address = invitation.email
    invitee = session.get(User, invitation.invitee_user_id)
    channel = session.get(Channel, invitation.channel_id)
    org = session.get(Organization, channel.organization_id).slug
    profile = invitee.email if invitee is not None else address
    correct = f"Correct the address in the user's profile (glaneur user update {org} {profile} --email ADDRESS)"
    again = f"send the invitation again (glaneur channel resend-invitation {channel.slug})."
    try:
        admin.normalize_email(address)
    except UsageError:
        return Check(
            "invitation",
            Verdict.FAIL,
            f"{InvitationState(invitation.state).value}: '{address}' is not an e-mail address, so the mail cannot arrive",
            f"{correct}, then {again}",
        )
    moved = invitee is not None and invitee.email != address.lower()
    expires = _aware(invitation.expires_at)
    sent = (
        f"sent {invitation.sent_count} time(s) to {address}, last on {invitation.last_sent_at:%Y-%m-%d %H:%M} UTC"
        if invitation.sent_count and invitation.last_sent_at
        else f"not sent yet to {address}"
    )
    state = InvitationState(invitation.state)
    if state == InvitationState.UNDELIVERABLE or (state == InvitationState.PENDING and invitation.delivery_error):
        return Check(
            "invitation",
            Verdict.FAIL,
            f"{state.value}: the mail to {address} could not be delivered: {invitation.delivery_error or 'no detail'}",
            f"{correct} or the mail settings, then {again}",
        )
    if state == InvitationState.EXPIRED or (state == InvitationState.PENDING and expires <= now):
        return Check(
            "invitation",
            Verdict.FAIL,
            f"expired on {expires:%Y-%m-%d %H:%M} UTC without an answer ({sent})",
            f"Send a new invitation; if the first one never arrived, {SPAM_ADVICE}.",
        )
    if state == InvitationState.PENDING:
        detail = f"pending, {sent}; expires on {expires:%Y-%m-%d %H:%M} UTC"
        fix = f"Ask the account holder to answer the mail; if it did not arrive, {SPAM_ADVICE}."
        if moved:
            detail += f"; their profile now says {invitee.email}"
            fix = f"The invitation went to {address} but the profile now says {invitee.email}: {again}"
        return Check("invitation", Verdict.WARN, detail, fix)
    if state == InvitationState.ANSWERED:
        when = f" on {invitation.answered_at:%Y-%m-%d %H:%M} UTC" if invitation.answered_at else ""
        return Check("invitation", Verdict.OK, f"answered{when} by {address}")
    return Check("invitation", Verdict.OK, f"{state.value} ({sent})")


def next_slot(time_slot: str, timezone: str, now: datetime) -> datetime:
    """The next occurrence of a daily time slot (HH:MM in ``timezone``) after ``now``."""
    zone = ZoneInfo(timezone)
    hour, minute = (int(part) for part in time_slot.split(":"))
    local = now.astimezone(zone)
    today = datetime(local.year, local.month, local.day, hour, minute, tzinfo=zone)
    if today > local:
        return today
    tomorrow = local.date() + timedelta(days=1)
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, hour, minute, tzinfo=zone)


def _next_run(
    channel: Channel, settings: Settings, now: datetime, deployments: Callable[[str], DeploymentLookup] | None
) -> Check:
    upcoming = next_slot(channel.time_slot, settings.timezone, now)
    detail = f"next daily collection {upcoming:%Y-%m-%d %H:%M} {settings.timezone} (time slot {channel.time_slot})"
    if channel.kind != ChannelKind.SUPPLIER_PORTAL:
        return Check(
            "next run",
            Verdict.WARN,
            f"the daily dispatch schedules supplier-portal channels only; this one is a {channel.kind} channel",
            f"Collect it by hand with: glaneur run {channel.slug}.",
        )
    if deployments is None:
        return Check("next run", Verdict.OK, detail)
    lookup = deployments(DISPATCH_DEPLOYMENT)
    if lookup.api_url is None:
        return Check(
            "next run",
            Verdict.WARN,
            f"{detail}; {lookup.error}, so whether the daily dispatch is deployed is unknown",
            "Point PREFECT_API_URL at the Prefect server Glaneur is deployed on; "
            f"meanwhile collect by hand with: glaneur run {channel.slug}.",
        )
    if not lookup.reachable:
        return Check(
            "next run",
            Verdict.WARN,
            f"{detail}; {lookup.where} did not answer ({lookup.error})",
            "Start the Prefect server or correct PREFECT_API_URL: the daily dispatch schedules nothing while it is down.",
        )
    deployment = lookup.deployment
    if deployment is None:
        return Check(
            "next run",
            Verdict.FAIL,
            f"{detail}; but {lookup.where} has no {DISPATCH_DEPLOYMENT} deployment, so nothing schedules it",
            f"On the Prefect server, {DEPLOY_HINT}.",
        )
    schedules = [s for s in deployment.get("schedules") or [] if s.get("active", True)]
    if deployment.get("paused") or not schedules:
        why = "is paused" if deployment.get("paused") else "has no active schedule"
        return Check(
            "next run",
            Verdict.FAIL,
            f"{detail}; but the {DISPATCH_DEPLOYMENT} deployment {why}, so nothing schedules it",
            "Resume the deployment or its schedule in the Prefect UI (Deployments > dispatch-daily).",
        )
    crons = ", ".join(
        " ".join(str(part) for part in (s.get("schedule", {}).get("cron"), s.get("schedule", {}).get("timezone")) if part)
        for s in schedules
    )
    detail += f"; scheduled by {DISPATCH_DEPLOYMENT} ({crons or 'active schedule'})"
    if lookup.workers_online == 0:
        pool = deployment.get("work_pool_name")
        return Check(
            "next run",
            Verdict.WARN,
            f"{detail}; but no worker is online in work pool '{pool}', so scheduled runs wait",
            f"Start a worker: prefect worker start --pool {pool}.",
        )
    return Check("next run", Verdict.OK, detail)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
