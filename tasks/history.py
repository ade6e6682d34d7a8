"""The channel's history as a Prefect artifact: one key per channel, one new version per run.

Prefect renders artifact Markdown unescaped (an image tag renders, a ``javascript:`` link
survives), so every value that comes from a portal or a person is escaped here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from glaneur.db import session_scope
from glaneur.invoices import collection
from glaneur.settings import get_settings
from glaneur.statuses import Status, describe
from glaneur.storage import get_storage
from tasks.evidence import browser_link

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~\"'])")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def md_escape(text: object) -> str:
    """Escape a value for a Markdown table cell: no markup, no HTML, no links, one line."""
    flat = " ".join(str(text).split())
    flat = re.sub(r"[&<>]", lambda match: _HTML[match.group()], flat)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", flat)


def artifact_key(channel: str) -> str:
    """Keys must match ^[a-z0-9-]*$ (Prefect)."""
    return "channel-" + re.sub(r"[^a-z0-9-]+", "-", channel.lower()).strip("-")


def local_time(moment: datetime, zone: ZoneInfo) -> str:
    """A stored UTC time in the channel's time zone, with the zone's abbreviation (``2026-11-23 04:12 CET``)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def history_markdown(
    plan: collection.CollectionPlan, rows: list[tuple], links: dict[str, str], zone: ZoneInfo | None = None
) -> str:
    """Narrow enough for 1440 px: date and status first, long messages in a detail line below the table."""
    zone = zone or ZoneInfo(get_settings().timezone)
    lines = [
        f"# Collecte > Historique: {md_escape(plan.label)}",
        "",
        f"Provider: {md_escape(plan.provider)} · channel: {md_escape(plan.channel)} · times in {md_escape(zone.key)}",
        "",
        f"| date ({md_escape(zone.key)}) | status | account | new | already had | evidence |",
        "|---|---|---|---:|---:|---|",
    ]
    details = []
    for run, login in rows:
        evidence = " · ".join(
            f"[{'screenshot' if key.endswith('.png') else 'trace'}](<{links[key]}>)"
            for key in run.evidence_keys.split(",")
            if key in links
        )
        when = md_escape(local_time(run.started_at, zone))
        title = describe(run.status).title
        lines.append(
            f"| {when} | {md_escape(title)} | {md_escape(login)} | {run.new_documents} | {run.already_had} | {evidence} |"
        )
        if run.status != Status.OK and run.message:
            details.append(f"- **{when}**, {md_escape(login)}, {md_escape(title)}: {md_escape(run.message)}")
    if details:
        lines += ["", "**What happened**", "", *details]
    return "\n".join(lines)


def history_description(plan: collection.CollectionPlan, rows: list[tuple], zone: ZoneInfo) -> str:
    """Status first: the Artifacts page shows this on each channel's card."""
    if not rows:
        return f"{md_escape(plan.label)}: no run yet"
    newest = [run for run, _ in rows if run.flow_run_id == rows[0][0].flow_run_id]
    status = next((run.status for run in newest if run.status != Status.OK), newest[0].status)
    new = sum(run.new_documents for run in newest)
    return (
        f"**{md_escape(describe(status).title)}** · {md_escape(plan.label)} · "
        f"{md_escape(local_time(rows[0][0].started_at, zone))} · {new} new"
    )


def md_link(url: str) -> str:
    """A link target safe in ``[text](<url>)``: only our own schemes, nothing that closes the brackets."""
    scheme = url.split(":", 1)[0].lower()
    if scheme not in {"http", "https"}:  # what a browser opens from the Prefect UI
        return ""
    return re.sub(r"[<>()\s\\`]", lambda match: f"%{ord(match.group()):02X}", url)


def run_artifact(kind: str, key: str, data: str, description: str) -> None:
    """An artifact of the flow run itself, not of the task that makes it: the run's Artifacts tab lists it
    under "Flow run" (Prefect's own helpers tie it to the task, leaving "Flow run: None" at the top)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate
    from prefect.runtime import flow_run

    with get_client(sync_client=True) as client:
        client.create_artifact(
            ArtifactCreate(key=key, type=kind, data=data, description=description, flow_run_id=flow_run.id)
        )


def publish_history(plan: collection.CollectionPlan) -> str:
    """Publish the channel's history artifact: a plain call, not a task run (the crash hooks call it too; a task
    run per channel a day would cost the Prefect server more than the artifact itself)."""
    settings = get_settings()
    storage = get_storage(settings)
    with session_scope() as session:
        rows = collection.recent_runs(session, plan.channel_id)
    links = {
        key: md_link(browser_link(storage, settings, key))
        for run, _ in rows
        for key in run.evidence_keys.split(",")
        if key and re.fullmatch(r"[A-Za-z0-9._/-]+", key)
    }
    zone = ZoneInfo(settings.timezone)
    key = artifact_key(plan.channel)
    run_artifact(
        "markdown",
        key,
        history_markdown(plan, rows, {k: link for k, link in links.items() if link}, zone),
        history_description(plan, rows, zone),
    )
    return key
