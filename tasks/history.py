"""The channel's history as a Prefect artifact: one key per channel, one new version per run.

Prefect renders artifact Markdown unescaped (an image tag renders, a ``javascript:`` link
survives), so every value that comes from a portal or a person is escaped here.
"""

from __future__ import annotations

import re

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from glaneur import collection
from glaneur.db import session_scope
from glaneur.settings import get_settings
from glaneur.storage import get_storage

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


def history_markdown(plan: collection.CollectionPlan, rows: list[tuple], links: dict[str, str]) -> str:
    lines = [
        f"# Collecte > Historique: {md_escape(plan.label)}",
        "",
        f"Provider: {md_escape(plan.provider)} · channel: {md_escape(plan.channel)}",
        "",
        "| date | account | new | already had | status | message | evidence |",
        "|---|---|---:|---:|---|---|---|",
    ]
    for run, login in rows:
        evidence = " ".join(
            f"[{md_escape(key.rsplit('/', 1)[-1])}](<{links[key]}>)" for key in run.evidence_keys.split(",") if key in links
        )
        lines.append(
            "| {date} | {login} | {new} | {had} | {status} | {message} | {evidence} |".format(
                date=md_escape(run.started_at.strftime("%Y-%m-%d %H:%M")),
                login=md_escape(login),
                new=run.new_documents,
                had=run.already_had,
                status=md_escape(run.status.value),
                message=md_escape(run.message),
                evidence=evidence or "",
            )
        )
    return "\n".join(lines)


def md_link(url: str) -> str:
    """A link target safe in ``[text](<url>)``: only our own schemes, nothing that closes the brackets."""
    scheme = url.split(":", 1)[0].lower()
    if scheme not in {"file", "s3", "http", "https"}:
        return ""
    return re.sub(r"[<>()\s\\`]", lambda match: f"%{ord(match.group()):02X}", url)


def write_history(plan: collection.CollectionPlan) -> str:
    """Publish the channel's history artifact (a plain function: the crash hooks call it outside a task)."""
    storage = get_storage(get_settings())
    with session_scope() as session:
        rows = collection.recent_runs(session, plan.channel_id)
    links = {
        key: md_link(storage.link(key))
        for run, _ in rows
        for key in run.evidence_keys.split(",")
        if key and re.fullmatch(r"[A-Za-z0-9._/-]+", key)
    }
    key = artifact_key(plan.channel)
    create_markdown_artifact(
        key=key,
        markdown=history_markdown(plan, rows, {k: link for k, link in links.items() if link}),
        description=f"Collection history of {md_escape(plan.label)}",
    )
    return key


@task(name="publish-history", cache_policy=NO_CACHE)
def publish_history(plan: collection.CollectionPlan) -> str:
    return write_history(plan)
