"""Small validators shared by the administration modules: slugs, names, e-mails, time slots, TOTP seeds, dates."""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Iterable
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import TypeVar


from glaneur import totp as portal_totp
from glaneur.errors import UsageError
from glaneur.statuses import Status

# Slugs end up in storage keys, Prefect flow run names and artifact keys (^[a-z0-9-]*$).
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
SLUG_MAX = 63
# Pragmatic address check: one @, a dot-atom local part, a domain of DNS labels with a dot.
EMAIL_RE = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
TIME_SLOT_RE = re.compile(r"^(\d{1,2}):(\d{2})$")
C = TypeVar("C", bound=StrEnum)



def slugify(text: str) -> str:
    """``"Acme - Papeterie Dupont"`` -> ``"acme-papeterie-dupont"`` (accents dropped)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:SLUG_MAX].strip("-")


def check_slug(slug: str, what: str) -> str:
    slug = slug.strip()
    if not SLUG_RE.fullmatch(slug) or len(slug) > SLUG_MAX:
        suggestion = slugify(slug)
        hint = f" (for example '{suggestion}')" if suggestion else ""
        raise UsageError(
            f"invalid {what} slug '{slug}': use lowercase letters, digits and single dashes, "
            f"at most {SLUG_MAX} characters{hint}."
        )
    return slug


def check_name(name: str, what: str) -> str:
    name = name.strip()
    if not name:
        raise UsageError(f"the {what} name is empty: give a name.")
    return name


def normalize_email(email: str) -> str:
    """Trimmed and lowercased, so that one mailbox is one user; raises on a malformed address."""
    email = email.strip()
    if len(email) > 254 or not EMAIL_RE.fullmatch(email):
        raise UsageError(f"invalid e-mail address '{email}': expected something like name@example.com.")
    return email.lower()


def normalize_time_slot(time_slot: str) -> str:
    """``"6:00"`` -> ``"06:00"``; raises unless it is a time of day as HH:MM."""
    match = TIME_SLOT_RE.fullmatch(time_slot.strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise UsageError(f"invalid time slot '{time_slot}': expected HH:MM between 00:00 and 23:59, e.g. 06:00.")
    return f"{int(match[1]):02d}:{match[2]}"


def normalize_totp_seed(seed: str) -> str:
    """A base32 TOTP seed, spaces removed and uppercased, that pyotp accepts. Messages never repeat it."""
    cleaned = re.sub(r"[\s-]+", "", seed).upper().rstrip("=")
    try:
        valid = bool(re.fullmatch(r"[A-Z2-7]+", cleaned)) and bool(base64.b32decode(_padded(cleaned)))
    except binascii.Error:
        valid = False
    if not valid:
        raise UsageError("the TOTP seed is not valid base32 (letters A-Z and digits 2-7): copy it again from the portal.")
    if len(base64.b32decode(_padded(cleaned))) * 8 < portal_totp.MIN_SEED_BITS:
        raise UsageError(
            f"the TOTP seed is too short ({len(cleaned)} characters; a portal's seed has at least "
            f"{portal_totp.MIN_SEED_CHARS}): copy the whole seed from the portal."
        )
    portal_totp.code(cleaned)  # the collection computes codes from it: it must be usable now, not at collection time
    return cleaned


def _padded(base32: str) -> str:
    return base32 + "=" * (-len(base32) % 8)


def check_password(password: str | None) -> str:
    if password is None or not password.strip():
        raise UsageError("the password is empty: enter the password of the supplier account.")
    return password


def check_login(login: str) -> str:
    login = login.strip()
    if not login:
        raise UsageError("the login is empty: enter the identifier or e-mail used on the supplier's portal.")
    return login


def same_login(one: str, other: str) -> bool:
    """Two logins of one channel that differ only in case or spaces are one account ("Compta@x.fr", "compta@x.fr")."""
    return one.strip().casefold() == other.strip().casefold()


def parse_choice(choices: type[C], value: C | str, what: str, plural: str) -> C:
    """A member of ``choices`` from its value, case and surrounding spaces aside; raises listing the valid ones
    (``"unknown {what} 'x'; {plural}: a, b."``)."""
    try:
        return choices(value.strip().lower() if isinstance(value, str) else value)
    except ValueError:
        raise UsageError(f"unknown {what} '{value}'; {plural}: {', '.join(c.value for c in choices)}.") from None


def parse_status(value: Status | str) -> Status:
    """A status from its value (``"wrong_credentials"``); raises listing the valid ones."""
    return parse_choice(Status, value, "status", "statuses")


def parse_date(value: date | str) -> date:
    """A date from ``YYYY-MM-DD``; raises with the expected format."""
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise UsageError(f"invalid date '{value}': expected YYYY-MM-DD, e.g. 2025-01-31.") from None


def names_or_none(items: Iterable[str]) -> str:
    listed = ", ".join(items)
    return listed or "none yet"


def now() -> datetime:
    # Explicit timestamps: the columns are sqlmodel UTCDateTime, which refuses the naive
    # datetimes glaneur.models.utcnow returns today (see the report); aware UTC suits both.
    return datetime.now(UTC)
