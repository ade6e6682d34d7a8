"""Words the CLI offers as choices (rights, firm profiles, routes), kept apart from the models so that
``glaneur --help`` does not load SQLAlchemy. :mod:`glaneur.models` re-exports them."""

from __future__ import annotations

from enum import StrEnum


class Right(StrEnum):
    """Rights named in the seeds' "détail des droits"."""

    CONFIGURE_COLLECTION = "configure_collection"  # Autoriser l'accès au paramétrage de la collecte
    CONFIGURE_ACCOUNTING = "configure_accounting"  # Autoriser l'accès au paramétrage de la comptabilité


class FirmRole(StrEnum):
    """Profiles of a firm's users ("profils" of the per-IBAN connectors FAQ)."""

    SUPERVISOR = "supervisor"  # Superviseur
    ADMINISTRATOR = "administrator"  # Administrateur
    COLLABORATOR = "collaborator"  # Collaborateur


class StatementRoute(StrEnum):
    PENDING = "pending"  # not routed yet
    PARTNER = "partner"  # to the IBAN's connector
    GLOBAL = "global"  # in the firm's global statements file of a day
    ASIDE = "aside"  # unknown IBAN: kept aside and reported until the IBAN is added
    HELD = "held"  # read with warnings, and the firm holds such statements for review


MAX_ACCOUNTS_PER_CHANNEL = 2  # "jusqu'à deux comptes différents par collecteur"
MIN_SECRET_CHARS = 16  # partners' signing secrets and statement API tokens: said before the prompt, checked after
