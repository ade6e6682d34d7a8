"""Time slots: when in the night each channel's daily collection starts.

Thousands of channels must not all start at 06:00, and one supplier's channels must not start
together either. :func:`assign_slot` picks, for a new channel, the slot of the night window that
holds the fewest channels of the same provider, then the fewest channels overall, then the
earliest. Slots are spaced by :data:`STEP_MINUTES` inside :data:`NIGHT` (organisation's time zone).
A scheduler moves one channel with ``glaneur channel set-slot CHANNEL HH:MM``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

NIGHT = ("00:30", "05:55")  # first and last slot, inclusive
STEP_MINUTES = 5


def _minutes(slot: str) -> int:
    hours, minutes = slot.split(":")
    return int(hours) * 60 + int(minutes)


def night_slots(window: tuple[str, str] = NIGHT, step: int = STEP_MINUTES) -> list[str]:
    first, last = (_minutes(bound) for bound in window)
    return [f"{m // 60:02d}:{m % 60:02d}" for m in range(first, last + 1, step)]


def assign_slot(provider: str, existing: Iterable[tuple[str, str]], slots: list[str] | None = None) -> str:
    """The slot for a new channel of ``provider``, given the ``(provider, time_slot)`` of the others."""
    slots = slots or night_slots()
    same_provider: Counter[str] = Counter()
    overall: Counter[str] = Counter()
    for other_provider, slot in existing:
        overall[slot] += 1
        if other_provider == provider:
            same_provider[slot] += 1
    return min(slots, key=lambda slot: (same_provider[slot], overall[slot], _minutes(slot)))


def slot_for_new_channel(session, provider: str) -> str:
    """:func:`assign_slot` against the active channels in the database."""
    from sqlmodel import select

    from glaneur.models import Channel

    existing = session.exec(select(Channel.provider, Channel.time_slot).where(Channel.active == True)).all()  # noqa: E712
    return assign_slot(provider, existing)


def set_slot(session, channel: str, slot: str, *, actor) -> tuple[str, str]:
    """Move ``channel``'s daily collection to ``slot`` (HH:MM); returns (old, new). Audited."""
    from glaneur import admin

    found = admin.get_channel(session, channel)
    org = admin.organization_of(session, found)
    admin.require_right(actor, org, admin.right_for_kind(found.kind))
    old, found.time_slot = found.time_slot, admin.normalize_time_slot(slot)
    session.add(found)
    admin.audit_log_entry(session, org, actor, "channel.set_slot", found.slug, f"daily at {found.time_slot} (was {old})")
    session.flush()
    return old, found.time_slot
