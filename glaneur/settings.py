"""Settings, read from the environment (prefix ``GLANEUR_``) with embedded defaults under ``./var/``.

The embedded defaults make ``make demo`` work on a fresh machine: SQLite database, local
document storage, a generated vault key and a mail outbox, all under one folder.
"""

from __future__ import annotations

import os
import re
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from glaneur.errors import ConfigurationError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GLANEUR_", extra="ignore")

    home: Path = Field(default=PROJECT_ROOT / "var", description="Folder holding every embedded default.")
    database_url: str | None = Field(default=None, description="Any SQLAlchemy URL; default SQLite in home.")

    # Vault: a Fernet key (urlsafe base64, 32 bytes). With the embedded default it is
    # generated into home/vault.key on first use; a configured key is never generated.
    vault_key: SecretStr | None = None
    vault_key_file: Path | None = None

    storage: Literal["local", "s3"] = "local"
    storage_path: Path | None = Field(default=None, description="Local storage root; default home/documents.")
    s3_bucket: str | None = None
    s3_prefix: str = ""
    s3_endpoint_url: str | None = None
    s3_region: str | None = None

    chromium_path: str | None = Field(default=None, description="Chromium executable; auto-detected.")
    browser_headless: bool = True
    navigation_timeout_seconds: float = 20.0
    # Invoice lists: a "next" link that never ends (or loops) stops here, as portal_changed.
    max_list_pages: int = 100
    # A portal's Retry-After (429, 503) is honoured up to this; asked for longer, the run does not retry.
    max_retry_after_seconds: float = 300.0

    # Retries of transient portal failures (Prefect task retries, exponential backoff).
    retries: int = 3
    retry_base_seconds: float = 10.0
    lookback_days: int = 45
    full_pass_every_days: int = 7
    max_document_bytes: int = 25 * 1024 * 1024
    # Statements (firms): files larger than this are kept but rejected; partners must answer in time.
    max_statement_file_bytes: int = 20 * 1024 * 1024
    statement_api_timeout_seconds: float = 30.0
    delivery_timeout_seconds: float = 10.0
    statements_time_slot: str = Field(default="07:00", description="Daily statements routing time (HH:MM).")

    # Provider base URLs: GLANEUR_PORTAL_URLS='{"papeterie-dupont": "http://127.0.0.1:8701"}'
    portal_urls: dict[str, str] = Field(default_factory=dict)

    timezone: str = Field(default="Europe/Paris", description="Time zone of channels' daily time slots.")

    mail_from: str = "glaneur@localhost"
    smtp_host: str | None = Field(default=None, description="SMTP server; unset: mails go to home/outbox as .eml.")
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    prefect_ui_url: str | None = Field(default=None, description="Prefect UI base URL for links in mails.")
    evidence_url: str = Field(default="http://127.0.0.1:8707",
                              description="Base URL of `glaneur serve`, which opens local evidence links and the "
                              "account holders' credentials forms.")
    evidence_link_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60, le=7 * 24 * 3600,
                                           description="How long evidence links (S3 presigned or signed) open.")
    acting_user: str | None = Field(default=None, description="E-mail of the user CLI commands act as (--as).")

    # Human in the loop (issue 4)
    second_factor_timeout_seconds: float = 3600.0
    # On a worker, how long a second factor waits with the browser open before the run suspends
    # (portals whose pending login can be opened again) or ends second_factor_timeout (the others).
    second_factor_hold_seconds: float = Field(default=180.0, gt=0)
    second_factor_attempts: int = 3
    pause_poll_seconds: float = 1.0
    session_ttl_hours: float = 24 * 7
    invitation_ttl_hours: float = 24 * 7
    # A collection still Running after this long has lost its process (killed with no worker to notice):
    # the sweep marks its flow run Crashed and closes its row. Paused runs wait in Paused, not Running.
    run_lost_after_hours: float = 6.0

    @field_validator("portal_urls")
    @classmethod
    def _portal_urls_are_http(cls, urls: dict[str, str]) -> dict[str, str]:
        for provider, url in urls.items():
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"the URL of {provider!r} is not an http(s) URL with a host")
        return urls

    @property
    def resolved_database_url(self) -> str:
        return normalise_database_url(self.database_url or f"sqlite:///{self.home / 'glaneur.db'}")

    @property
    def resolved_storage_path(self) -> Path:
        return self.storage_path or self.home / "documents"

    @property
    def resolved_vault_key_file(self) -> Path:
        return self.vault_key_file or self.home / "vault.key"

    @property
    def outbox_path(self) -> Path:
        return self.home / "outbox"

    @property
    def uses_embedded_vault_key(self) -> bool:
        return self.vault_key is None and self.vault_key_file is None

    def chromium_executable(self) -> str | None:
        """Debian's Chromium where Playwright has no browser of its own; None lets Playwright choose.

        Headless, Debian's ``chromium-headless-shell`` comes first: it is what Playwright itself runs
        headless (its own ``chromium_headless_shell`` build), and a collection costs it about 40% of the CPU
        the full Chromium spends in its new headless mode (``bench/chromium_cost.py``). A visible browser
        (``GLANEUR_BROWSER_HEADLESS=false``) needs the full one."""
        if self.chromium_path:
            return self.chromium_path
        playwright_cache = Path(os.environ.get("PLAYWRIGHT_BROWSERS_PATH", Path.home() / ".cache/ms-playwright"))
        if any(playwright_cache.glob("chromium*/chrome-linux*/chrome")):
            return None
        shell = ("chromium-headless-shell",) if self.browser_headless else ()
        for name in (*shell, "chromium", "chromium-browser", "google-chrome"):
            found = shutil.which(name)
            if found:
                return found
        return None


# What a setting should look like, for the settings whose mistakes are common; others get pydantic's words.
_EXPECTED = {
    "portal_urls": "a JSON object mapping provider slugs to base URLs, "
    'e.g. {"papeterie-dupont": "https://portal.example"}',
    "database_url": "a SQLAlchemy URL, e.g. postgresql://user:password@host:5432/glaneur",
}


def normalise_database_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` name no driver: use psycopg (3), the one Glaneur installs.

    SQLAlchemy would otherwise pick psycopg2, which is not installed.
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def setting_name(field: str) -> str:
    return f"GLANEUR_{field.upper()}"


@lru_cache
def get_settings() -> Settings:
    """The settings from the environment; a bad value is a :class:`ConfigurationError` naming its variable.

    Values are never echoed: a setting may hold a password or a key.
    """
    try:
        return Settings()
    except SettingsError as error:  # a complex value (JSON) that does not parse
        found = re.search(r'field "(\w+)"', str(error))
        field = found.group(1) if found else None
        name = setting_name(field) if field else "a GLANEUR_ setting"
        expected = _EXPECTED.get(field or "", "valid JSON")
        raise ConfigurationError(f"{name} cannot be read: expected {expected}.") from None
    except ValidationError as error:
        problems = []
        for problem in error.errors(include_input=False, include_url=False):
            field = str(problem["loc"][0]) if problem["loc"] else ""
            where = "".join(f"[{part!r}]" for part in problem["loc"][1:])
            expected = f" (expected {_EXPECTED[field]})" if field in _EXPECTED else ""
            message = str(problem["msg"]).removeprefix("Value error, ")
            problems.append(f"{setting_name(field)}{where}: {message}{expected}")
        raise ConfigurationError("Bad setting: " + "; ".join(problems) + ".") from None


def reset_settings() -> None:
    """Forget cached settings (tests change the environment between cases)."""
    get_settings.cache_clear()
