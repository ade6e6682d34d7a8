"""Administration of the domain: organisations, users, binders, channels and their accounts, history.

One module a concern; this package re-exports their public names, so ``admin.add_channel`` reads as before:

- :mod:`~glaneur.admin.checks`: small validators (slugs, names, e-mails, time slots, TOTP seeds, dates);
- :mod:`~glaneur.admin.lookups`: finding an organisation, user, binder, channel, account or provider;
- :mod:`~glaneur.admin.rights`: rights ("détail des droits") and the audit log;
- :mod:`~glaneur.admin.organizations`: organisations, users, binders;
- :mod:`~glaneur.admin.channels`: channels and their accounts (credentials, deletion);
- :mod:`~glaneur.admin.listings`: channel summaries, the collection history, filed documents;
- :mod:`~glaneur.admin.connector_requests`: requests for new collectors.

Every function takes a :class:`sqlmodel.Session` and returns model objects. Bad input raises
:class:`~glaneur.errors.UsageError` naming what to fix, and every check runs before the first
write, so a refused call changes nothing. Writes are flushed, never committed: the caller owns
the transaction (:func:`glaneur.db.session_scope` commits, or rolls back on any error).

Secrets (passwords, TOTP seeds) go to the vault; an account keeps only the vault entry's id.
No function here prints, prompts or touches Prefect.

Rights ("détail des droits"): every change to a channel or its accounts is made by an ``actor``,
a user of the channel's organisation holding the right its kind needs (supplier channels:
"Autoriser l'accès au paramétrage de la collecte"; bank channels: "... de la comptabilité").
Users and binders are created by a user of the organisation holding either right, except while
the organisation has no user at all (bootstrap: its first user, and binders, need no actor).
Organisations and shipped connectors are the platform team's, at the console (no actor).
Every change is written to the audit log (:class:`~glaneur.models.AuditLog`), never a secret.
"""

from glaneur.admin.checks import (
    SLUG_RE,
    SLUG_MAX,
    EMAIL_RE,
    TIME_SLOT_RE,
    slugify,
    check_slug,
    check_name,
    normalize_email,
    normalize_time_slot,
    normalize_totp_seed,
    check_password,
    check_login,
    same_login,
    parse_choice,
    parse_status,
    parse_date,
    names_or_none,
)
from glaneur.admin.lookups import (
    get_organization,
    get_user,
    get_actor,
    get_person,
    get_binder,
    get_channel,
    is_deleted,
    get_provider,
    get_account,
    channel_accounts,
    organization_of,
)
from glaneur.admin.rights import (
    RIGHT_LABELS,
    ADMINISTRATION_RIGHTS,
    FIRM_ROLE_RANK,
    right_label,
    right_for_kind,
    bootstrapping,
    require_member,
    require_right,
    readable_organizations,
    require_reader,
    audit_log_entry,
    AuditEntry,
    audit_log,
)
from glaneur.admin.organizations import (
    create_organization,
    create_user,
    update_user,
    create_binder,
)
from glaneur.admin.channels import (
    PASSWORD_PURPOSE,
    TOTP_PURPOSE,
    check_new_channel,
    add_channel,
    check_account_slot,
    add_account,
    check_credentials_update,
    update_credentials,
    account_answered,
    check_answer,
    check_account_removal,
    remove_account,
    Deletion,
    check_deletion,
    delete_channel,
)
from glaneur.admin.listings import (
    ChannelSummary,
    HistoryEntry,
    list_channels,
    channel_summaries,
    history,
    list_documents,
    count_documents,
    channel_slugs,
)
from glaneur.admin.connector_requests import (
    URL_MAX,
    normalize_portal_url,
    portal_host,
    provider_for_portal,
    AskedRequest,
    request_connector,
    ConnectorRequestEntry,
    list_connector_requests,
    get_connector_request,
    ToldRequest,
    ship_connector_request,
    reject_connector_request,
    sync_connector_requests,
)

__all__ = [
    "SLUG_RE",
    "SLUG_MAX",
    "EMAIL_RE",
    "TIME_SLOT_RE",
    "slugify",
    "check_slug",
    "check_name",
    "normalize_email",
    "normalize_time_slot",
    "normalize_totp_seed",
    "check_password",
    "check_login",
    "same_login",
    "parse_choice",
    "parse_status",
    "parse_date",
    "names_or_none",
    "get_organization",
    "get_user",
    "get_actor",
    "get_person",
    "get_binder",
    "get_channel",
    "is_deleted",
    "get_provider",
    "get_account",
    "channel_accounts",
    "organization_of",
    "RIGHT_LABELS",
    "ADMINISTRATION_RIGHTS",
    "FIRM_ROLE_RANK",
    "right_label",
    "right_for_kind",
    "bootstrapping",
    "require_member",
    "require_right",
    "readable_organizations",
    "require_reader",
    "audit_log_entry",
    "AuditEntry",
    "audit_log",
    "create_organization",
    "create_user",
    "update_user",
    "create_binder",
    "PASSWORD_PURPOSE",
    "TOTP_PURPOSE",
    "check_new_channel",
    "add_channel",
    "check_account_slot",
    "add_account",
    "check_credentials_update",
    "update_credentials",
    "account_answered",
    "check_answer",
    "check_account_removal",
    "remove_account",
    "Deletion",
    "check_deletion",
    "delete_channel",
    "ChannelSummary",
    "HistoryEntry",
    "list_channels",
    "channel_summaries",
    "history",
    "list_documents",
    "count_documents",
    "channel_slugs",
    "URL_MAX",
    "normalize_portal_url",
    "portal_host",
    "provider_for_portal",
    "request_connector",
    "ConnectorRequestEntry",
    "list_connector_requests",
    "get_connector_request",
    "AskedRequest",
    "ToldRequest",
    "ship_connector_request",
    "reject_connector_request",
    "sync_connector_requests",
]
