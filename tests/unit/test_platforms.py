"""Platforms: a provider many suppliers run at their own address; each channel keeps its portal URL."""

from __future__ import annotations

import json
import sys
import types

import pytest
from sqlmodel import Session, select

from connectors import catalog
from glaneur import doctor
from glaneur.errors import UsageError
from glaneur.invoices import collection
from glaneur.models import Channel
from glaneur.settings import get_settings, reset_settings
from tests.commands import glaneur, ok

PLATFORM = "odoo"
PASSWORD = "Zq7-unique-Pa55word"


def refused(*args: str, expect: str):
    result = glaneur(*args)
    assert result.exit_code == 2, (result.output, result.exception)
    assert "Traceback" not in result.output
    assert expect in " ".join(result.stderr.split()), result.stderr


def session() -> Session:
    from glaneur.db import get_engine

    return Session(get_engine(), expire_on_commit=False)


@pytest.fixture
def acme(glaneur_home, monkeypatch):
    module = types.ModuleType("flows.activation")  # first collections are not run here
    module.start_first_collection = lambda slug, *, what="First collection": f"{what} of {slug}: not run (test)."
    monkeypatch.setitem(sys.modules, "flows.activation", module)
    ok("org", "create", "acme", "Acme SA")
    ok("binder", "create", "acme", "factures", "Factures fournisseurs")
    ok("user", "create", "acme", "alice@acme.fr", "Alice", "--right", "configure_collection")
    monkeypatch.setenv("GLANEUR_ACTING_USER", "alice@acme.fr")
    reset_settings()
    return glaneur_home


def add(label: str, provider: str, *extra: str):
    return glaneur("channel", "add", "acme", "--label", label, "--provider", provider, "--binder", "factures",
                   "--recipient", "alice@acme.fr", *extra)  # fmt: skip


def test_odoo_is_a_platform_of_the_catalogue():
    assert catalog.get_provider(PLATFORM).platform and PLATFORM in catalog.platforms()
    assert not catalog.get_provider("papeterie-dupont").platform


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://portal.martin.example/", "https://portal.martin.example"),
        ("https://erp.girard.example:8443/odoo", "https://erp.girard.example:8443/odoo"),
        ("http://127.0.0.1:8706", "http://127.0.0.1:8706"),
        ("http://localhost:8069/", "http://localhost:8069"),
        ("http://[::1]:8069", "http://[::1]:8069"),
    ],
)
def test_portal_urls_accepted(url, kept):
    assert catalog.check_portal_url(PLATFORM, url) == kept


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (None, "give the supplier's portal with --portal-url"),
        ("", "give the supplier's portal with --portal-url"),
        ("http://portal.martin.example", "use https (http is accepted on loopback only)"),
        ("http://10.0.0.5:8069", "use https"),
        ("ftp://portal.martin.example", "is not a web address"),
        ("portal.martin.example", "is not a web address"),
        ("https://alice:secret@portal.martin.example", "must not carry a login or password"),
        ("https://portal.martin.example/web/login?db=prod", "query or fragment"),
        ("https://portal.martin.example:99999", "invalid port"),
    ],
)
def test_portal_urls_refused(url, words):
    with pytest.raises(UsageError) as refusal:
        catalog.check_portal_url(PLATFORM, url)
    assert words in str(refusal.value)
    assert "secret" not in str(refusal.value)


def test_a_portal_url_is_refused_for_a_provider_that_is_not_a_platform():
    with pytest.raises(UsageError, match="only for a platform"):
        catalog.check_portal_url("papeterie-dupont", "https://portal.example")
    assert catalog.check_portal_url("papeterie-dupont", None) is None


def test_the_channel_url_comes_before_glaneur_portal_urls(monkeypatch):
    monkeypatch.setenv("GLANEUR_PORTAL_URLS", json.dumps({PLATFORM: "http://127.0.0.1:1"}))
    reset_settings()
    assert catalog.portal_url(PLATFORM) == "http://127.0.0.1:1"  # tests may still point a provider anywhere
    assert catalog.portal_url(PLATFORM, "https://portal.martin.example") == "https://portal.martin.example"


def test_channel_add_keeps_the_portal_url_and_shows_it(acme):
    refused("channel", "add", "acme", "--label", "Martin", "--provider", PLATFORM, "--binder", "factures",
            "--recipient", "alice@acme.fr", expect="give the supplier's portal with --portal-url")  # fmt: skip
    refused("channel", "add", "acme", "--label", "Martin", "--provider", PLATFORM, "--binder", "factures",
            "--recipient", "alice@acme.fr", "--portal-url", "http://portal.martin.example",
            expect="use https")  # fmt: skip
    refused("channel", "add", "acme", "--label", "Papeterie", "--provider", "papeterie-dupont", "--binder",
            "factures", "--recipient", "alice@acme.fr", "--portal-url", "https://portal.example",
            expect="only for a platform")  # fmt: skip
    result = add("Martin", PLATFORM, "--portal-url", "https://portal.martin.example/")
    assert result.exit_code == 0, result.output
    assert add("Girard", PLATFORM, "--portal-url", "https://erp.girard.example").exit_code == 0
    assert add("Papeterie", "papeterie-dupont").exit_code == 0
    with session() as s:
        urls = {c.slug: c.portal_url for c in s.exec(select(Channel)).all()}
    assert urls == {"acme-martin": "https://portal.martin.example", "acme-girard": "https://erp.girard.example",
                    "acme-papeterie": None}  # fmt: skip
    out = ok("channels").stdout
    assert "https://portal.martin.example" in out and "https://erp.girard.example" in out
    with session() as s:
        plan = collection.load_plan(s, "acme-girard", get_settings(), None)
        checks = {check.name: check for check in doctor.diagnose(s, "acme-martin")}
    assert plan.portal_url == "https://erp.girard.example"
    assert checks["provider"].verdict == doctor.Verdict.OK
    assert "portal https://portal.martin.example" in checks["provider"].detail


def test_doctor_fails_a_platform_channel_without_its_address(acme):
    assert add("Martin", PLATFORM, "--portal-url", "https://portal.martin.example").exit_code == 0
    with session() as s:
        channel = s.exec(select(Channel)).one()
        channel.portal_url = None  # as a channel written before the column existed would be
        s.add(channel)
        s.commit()
        check = {c.name: c for c in doctor.diagnose(s, "acme-martin")}["provider"]
    assert check.verdict == doctor.Verdict.FAIL and "--portal-url" in check.fix


def test_providers_marks_the_platform(glaneur_home):
    out = " ".join(ok("providers").stdout.split())
    assert "platform: each supplier runs its own; give its address with --portal-url" in out
