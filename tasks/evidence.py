"""Evidence a person opens from the Prefect UI in one click.

When a portal no longer looks as its connector expects, the collection keeps a screenshot and a
Playwright trace (``tasks.collect.keep_evidence``). This module publishes them on the flow run:

* an **image artifact** of the screenshot, so the run's Artifacts tab shows the page itself;
* a **Markdown artifact** with links a browser opens and how to open the trace.

Links a browser opens (``file:///`` and ``s3://`` links do nothing from a web page):

* on S3 storage, presigned GET URLs (``GLANEUR_EVIDENCE_LINK_TTL_SECONDS``, 7 days at most);
* on local storage, links to ``glaneur serve`` (``GLANEUR_EVIDENCE_URL``) signed with a key derived
  from the vault key and expiring after the same time; the service checks the signature and serves
  only evidence (keys under ``_evidence/``).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote, urlencode

from glaneur.settings import Settings, get_settings
from glaneur.statuses import Status, describe
from glaneur.storage import S3Storage, Storage, get_storage

EVIDENCE_PART = "/_evidence/"
TRACE_VIEWER_PORT = 9323


def is_evidence_key(key: str) -> bool:
    return EVIDENCE_PART in f"/{key}" and ".." not in key.split("/")


def _signing_keys(settings: Settings) -> list[bytes]:
    """Keys derived from the vault key(s): the first signs, any verifies (a key rotation keeps links open)."""
    from glaneur.signing import vault_derived_keys

    return vault_derived_keys(settings, b"glaneur evidence links")


def _signature(key: bytes, storage_key: str, expires: int) -> str:
    return hmac.new(key, f"evidence:{storage_key}:{expires}".encode(), hashlib.sha256).hexdigest()


def local_link(settings: Settings, key: str, *, now: float | None = None) -> str:
    """A link to ``glaneur serve`` that opens one evidence file until it expires."""
    expires = int((now or time.time()) + settings.evidence_link_ttl_seconds)
    signature = _signature(_signing_keys(settings)[0], key, expires)
    return f"{settings.evidence_url.rstrip('/')}/evidence/{quote(key)}?" + urlencode({"exp": expires, "sig": signature})


def check_local_link(settings: Settings, key: str, expires: int, signature: str, *, now: float | None = None) -> bool:
    if not is_evidence_key(key) or expires < (now or time.time()):
        return False
    return any(hmac.compare_digest(signature, _signature(k, key, expires)) for k in _signing_keys(settings))


def browser_link(storage: Storage, settings: Settings, key: str) -> str:
    """A URL a browser opens: presigned on S3, a signed ``glaneur serve`` link on local storage."""
    if isinstance(storage, S3Storage):
        return storage.presigned_url(key, settings.evidence_link_ttl_seconds)
    return local_link(settings, key)


def artifact_key(channel: str) -> str:
    from tasks.history import artifact_key as history_key

    return "evidence-" + history_key(channel).removeprefix("channel-")


def evidence_markdown(label: str, provider: str, links: dict[str, str], settings: Settings) -> str:
    from tasks.history import md_escape, md_link

    title = describe(Status.PORTAL_CHANGED).title
    days = settings.evidence_link_ttl_seconds / 86400
    valid = f"{days:g} days" if days >= 1 else f"{settings.evidence_link_ttl_seconds // 3600} hours"
    lines = [f"## {title}: {md_escape(label)} ({md_escape(provider)})", ""]
    shown = [(name, md_link(url)) for name, url in links.items()]
    lines.append(" · ".join(f"[{'Screenshot' if name.endswith('.png') else 'Playwright trace'}](<{url}>)"
                            for name, url in shown if url))
    lines += [
        "",
        f"The links open for {valid}.",
    ]
    if any(name.endswith(".zip") for name in links):
        lines += [
            "",
            "To open the trace, download it, then run "
            f"`.venv/bin/playwright show-trace --host 127.0.0.1 --port {TRACE_VIEWER_PORT} trace.zip` "
            f"and open <http://127.0.0.1:{TRACE_VIEWER_PORT}> (with Debian's Chromium the plain "
            "`show-trace trace.zip` finds no browser to open).",
        ]
    return "\n".join(lines)


def publish_evidence(plan, keys: list[str]) -> None:
    """The screenshot as an image artifact and the links as a Markdown artifact, on the current flow run."""
    from tasks.history import md_escape, run_artifact

    settings = get_settings()
    storage = get_storage(settings)
    links = {key.rsplit("/", 1)[-1]: browser_link(storage, settings, key) for key in keys}
    title = describe(Status.PORTAL_CHANGED).title
    key = artifact_key(plan.channel)
    screenshot = next((url for name, url in links.items() if name.endswith(".png")), None)
    if screenshot:
        run_artifact("image", key, screenshot,
                     f"**{title}**: {md_escape(plan.label)}, screenshot of the page the connector did not recognise")
    run_artifact("markdown", f"{key}-links", evidence_markdown(plan.label, plan.provider, links, settings),
                 f"**{title}**: {md_escape(plan.label)}, screenshot and Playwright trace")
