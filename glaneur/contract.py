"""The connector contract's types: what the domain and a connector exchange.

The domain (collection, administration, doctor) and the flows speak these types; connectors
(:mod:`connectors`) produce and consume them. They live here, in the domain, so that the domain
never imports a connector: ``connectors`` depends on ``glaneur``, never the other way round.
The navigation side of the contract (``login``, ``answer_second_factor``, ``is_logged_in``,
``list_documents(since)``, ``fetch``) is described in :mod:`connectors.kit`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum


class SecondFactorKind(StrEnum):
    TOTP = "totp"
    CODE = "code"  # one-time code sent by SMS or e-mail
    APP = "app"  # approval in the supplier's mobile app


class Engine(StrEnum):
    PLAYWRIGHT = "playwright"
    POWENS = "powens"


@dataclass(frozen=True)
class Provider:
    """A catalogue entry."""

    slug: str
    name: str
    kind: str = "supplier_portal"
    engine: Engine = Engine.PLAYWRIGHT
    default_url: str = ""
    login_fields: tuple[str, ...] = ("login", "password")
    second_factor_kinds: tuple[SecondFactorKind, ...] = ()
    compatible: bool = True
    description: str = ""
    platform: bool = False  # software many suppliers run at their own address: each channel gives its portal URL
    chooses_biller: bool = False  # POWENS as engine: each channel names a supplier of POWENS's list (its biller)


@dataclass(frozen=True)
class SecondFactorChallenge:
    """What the portal asks after the password: the kind of answer, and its own words (no secret)."""

    kind: SecondFactorKind
    prompt: str  # e.g. "Un code à 6 chiffres vous a été envoyé par SMS au 06 •• •• •• 42."


@dataclass(frozen=True)
class Credentials:
    login: str
    password: str = field(repr=False)
    totp_seed: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RemoteDocument:
    """A document as the portal lists it, before download.

    ``amount`` is the invoice's total, or None when the portal does not show it where it was
    read (never the amount still due, which falls to 0.00 once paid).
    """

    reference: str
    document_date: date
    download_url: str
    amount: Decimal | None = None
    currency: str = "EUR"
    label: str = ""


class Listing(list[RemoteDocument]):
    """What one listing read: its documents (a list, newest first) and where it left the list.

    ``left_at`` is the address of the next page to read when the listing stopped at the page bound
    (``GLANEUR_MAX_LIST_PAGES``) with more pages to go, None when it read the list to its end (or to
    ``since``); ``pages`` is how many pages it read. A list longer than one run reads is not a changed
    portal: the collection files what was read and the next run goes on from ``left_at``.
    """

    def __init__(self, documents=(), *, left_at: str | None = None, pages: int = 0) -> None:
        super().__init__(documents)
        self.left_at = left_at
        self.pages = pages


@dataclass(frozen=True)
class FetchedDocument:
    document: RemoteDocument
    content: bytes = field(repr=False)
    content_type: str = ""
