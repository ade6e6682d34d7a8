"""The per-IBAN connectors FAQ, rule by rule, through the CLI and the database."""

from __future__ import annotations

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from cli.main import app
from glaneur.models import AuditLog, ClientIban, FirmConnector, MandateStatus, PartnerConnector, VaultEntry
from glaneur.settings import reset_settings

runner = CliRunner()

IBAN_FR = "FR7630004000000001234567845"
IBAN_FR_SPACED = "fr76 3000 4000 0000 0123 4567 845"
IBAN_BE = "BE68539007547034"
IBAN_DE = "DE89370400440532013000"
PARTNER_SECRET = "a-long-partner-signing-secret"


def glaneur(*args: str, input: str | None = None, actor: str | None = None):
    env = {"COLUMNS": "250"}
    prefix = ["--as", actor] if actor else []
    return runner.invoke(app, [*prefix, *args], input=input, env=env)


def ok(*args: str, input: str | None = None, actor: str | None = None):
    result = glaneur(*args, input=input, actor=actor)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def refused(*args: str, expect: str, input: str | None = None, actor: str | None = None):
    result = glaneur(*args, input=input, actor=actor)
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stderr.startswith("Error: "), result.output
    assert "Traceback" not in result.output
    assert expect in " ".join(result.stderr.split()), result.stderr
    return result


def rows(model):
    from sqlmodel import Session

    from glaneur.db import get_engine

    with Session(get_engine()) as session:
        return list(session.exec(select(model)).all())


@pytest.fixture
def firm(monkeypatch, request):
    for name in ("GLANEUR_DATABASE_URL", "GLANEUR_VAULT_KEY", "GLANEUR_VAULT_KEY_FILE", "GLANEUR_STORAGE_PATH",
                 "GLANEUR_ACTING_USER"):
        monkeypatch.delenv(name, raising=False)
    home = request.getfixturevalue("glaneur_home")
    reset_settings()
    ok("org", "create", "cabinet", "Cabinet Durand", "--firm")
    ok("org", "create", "acme", "Acme SA")  # a company, not a firm
    ok("user", "create", "cabinet", "admin@cabinet.fr", "Anne", "--right", "configure_accounting",
       "--profile", "administrator")
    ok("user", "create", "cabinet", "sup@cabinet.fr", "Sam", "--profile", "supervisor", actor="admin@cabinet.fr")
    ok("user", "create", "cabinet", "collab@cabinet.fr", "Chloé", "--profile", "collaborator",
       actor="admin@cabinet.fr")
    ok("user", "create", "cabinet", "nobody@cabinet.fr", "Noé", actor="admin@cabinet.fr")
    ok("partner", "add", "compta-express", "Compta Express", "--url", "http://127.0.0.1:9/api/statements",
       "--secret-stdin", "--support", "support@compta-express.example", input=PARTNER_SECRET + "\n")
    ok("partner", "add", "tenue-plus", "Tenue Plus")
    return home


# -- profiles ---------------------------------------------------------------------------------------


def test_firm_profiles_are_granted_no_higher_than_ones_own(firm):
    refused("user", "create", "cabinet", "x@cabinet.fr", "X", "--profile", "administrator",
            actor="sup@cabinet.fr", expect="lacks the right")  # no configure right at all
    refused("user", "create", "acme", "y@acme.fr", "Y", "--profile", "collaborator",
            expect="not an accounting firm")
    unknown = glaneur("user", "create", "cabinet", "z@cabinet.fr", "Z", "--profile", "boss", actor="admin@cabinet.fr")
    assert unknown.exit_code == 2 and "'boss' is not one of" in unknown.output  # Click's own choice check


def test_partner_secret_goes_to_the_vault_and_needs_a_length(firm):
    partner = next(p for p in rows(PartnerConnector) if p.slug == "compta-express")
    assert partner.secret_ref is not None
    assert all(PARTNER_SECRET.encode() not in entry.ciphertext for entry in rows(VaultEntry))
    refused("partner", "add", "short", "Short", "--url", "http://127.0.0.1:9/x", "--secret-stdin",
            input="tiny\n", expect="shorter than 16 characters")
    refused("partner", "add", "bad-url", "Bad", "--url", "ftp://x", "--secret-stdin", input=PARTNER_SECRET + "\n",
            expect="expected an http(s) address")
    listing = ok("partner", "list").stdout
    assert "Compta Express" in listing and "storage only" in listing


# -- 1. firm connectors: supervisor or administrator, no limit, removal refused while IBANs attached ------


def test_only_supervisors_and_administrators_associate_connectors(firm):
    refused("firm", "connector-add", "cabinet", "compta-express", actor="collab@cabinet.fr",
            expect="is collaborator in firm 'cabinet': only a supervisor or administrator may do this")
    refused("firm", "connector-add", "cabinet", "compta-express", actor="nobody@cabinet.fr",
            expect="has no profile in firm 'cabinet'")
    refused("firm", "connector-add", "cabinet", "compta-express", expect="must act as a known user")
    refused("firm", "connector-add", "acme", "compta-express", actor="admin@cabinet.fr",
            expect="'acme' is not an accounting firm")
    refused("firm", "connector-add", "cabinet", "nope", actor="sup@cabinet.fr",
            expect="unknown partner connector 'nope'; connectors: compta-express, tenue-plus")
    ok("firm", "connector-add", "cabinet", "compta-express", actor="sup@cabinet.fr")
    ok("firm", "connector-add", "cabinet", "tenue-plus", actor="admin@cabinet.fr")  # no limit in number
    refused("firm", "connector-add", "cabinet", "tenue-plus", actor="admin@cabinet.fr", expect="already associated")
    assert len(rows(FirmConnector)) == 2
    listing = ok("firm", "connectors", "cabinet").stdout
    assert "compta-express" in listing and "tenue-plus" in listing


def test_removal_refused_while_ibans_are_attached_and_lists_them(firm):
    ok("firm", "connector-add", "cabinet", "compta-express", actor="sup@cabinet.fr")
    ok("iban", "add", "cabinet", IBAN_FR, "--client", "Boulangerie Martin", actor="collab@cabinet.fr")
    ok("iban", "add", "cabinet", IBAN_BE, "--client", "Garage Dubois", actor="collab@cabinet.fr")
    ok("iban", "attach", "cabinet", IBAN_FR, "compta-express", actor="collab@cabinet.fr")
    ok("iban", "attach", "cabinet", IBAN_BE, "compta-express", actor="collab@cabinet.fr")
    result = refused("firm", "connector-remove", "cabinet", "compta-express", actor="admin@cabinet.fr",
                     expect="2 IBAN(s) are attached to it")
    assert IBAN_FR in result.stderr and IBAN_BE in result.stderr
    refused("firm", "connector-remove", "cabinet", "compta-express", actor="collab@cabinet.fr",
            expect="only a supervisor or administrator")
    ok("iban", "attach", "cabinet", IBAN_FR, "none", actor="collab@cabinet.fr")  # "Aucun connecteur"
    ok("iban", "attach", "cabinet", IBAN_BE, "none", actor="collab@cabinet.fr")
    ok("firm", "connector-remove", "cabinet", "compta-express", actor="admin@cabinet.fr")
    assert rows(FirmConnector) == []
    actions = [entry.action for entry in rows(AuditLog)]
    assert actions.count("firm.connector_associate") == 1 and actions.count("firm.connector_remove") == 1


# -- 2. IBANs: validated, any profile attaches, only to an associated connector; mandates ---------------------


def test_ibans_are_validated_and_normalised(firm):
    ok("iban", "add", "cabinet", IBAN_FR_SPACED, "--client", "Boulangerie Martin", actor="collab@cabinet.fr")
    assert [row.iban for row in rows(ClientIban)] == [IBAN_FR]
    refused("iban", "add", "cabinet", IBAN_FR, "--client", "Again", actor="collab@cabinet.fr",
            expect="already registered")
    refused("iban", "add", "cabinet", "FR7630004000000001234567846", "--client", "Typo", actor="collab@cabinet.fr",
            expect="check digits do not match")
    refused("iban", "add", "cabinet", "XX7630004000000001234567845", "--client", "Nowhere",
            actor="collab@cabinet.fr", expect="country code")
    refused("iban", "add", "cabinet", "FR76300040000000012345678", "--client", "Short", actor="collab@cabinet.fr",
            expect="wrong length")
    refused("iban", "add", "cabinet", IBAN_DE, "--client", "X", actor="nobody@cabinet.fr", expect="has no profile")
    assert len(rows(ClientIban)) == 1


def test_an_iban_is_attached_only_to_an_associated_connector(firm):
    ok("iban", "add", "cabinet", IBAN_FR, "--client", "Boulangerie Martin", actor="collab@cabinet.fr")
    refused("iban", "attach", "cabinet", IBAN_FR, "compta-express", actor="collab@cabinet.fr",
            expect="connector 'compta-express' is not associated with firm 'cabinet' (associated: none yet)")
    ok("firm", "connector-add", "cabinet", "compta-express", actor="sup@cabinet.fr")
    out = ok("iban", "attach", "cabinet", IBAN_FR, "compta-express", actor="collab@cabinet.fr").stdout
    assert "mandate is pending" in out  # attached but not active yet
    refused("iban", "attach", "cabinet", IBAN_DE, "compta-express", actor="collab@cabinet.fr",
            expect="is not one of firm 'cabinet''s client IBANs")
    (row,) = rows(ClientIban)
    assert row.partner_id is not None and not row.active


def test_mandate_status_makes_the_iban_active(firm):
    ok("iban", "add", "cabinet", IBAN_FR, "--client", "Boulangerie Martin", actor="collab@cabinet.fr")
    refused("iban", "mandate", "cabinet", IBAN_FR, "approved", actor="collab@cabinet.fr",
            expect="only a supervisor or administrator")
    refused("iban", "mandate", "cabinet", IBAN_FR, "signed", actor="sup@cabinet.fr", expect="unknown mandate status")
    assert "IBAN active" in ok("iban", "mandate", "cabinet", IBAN_FR, "approved", "--reference", "MDT-1",
                               actor="sup@cabinet.fr").stdout
    (row,) = rows(ClientIban)
    assert row.mandate_status == MandateStatus.APPROVED and row.active and row.mandate_reference == "MDT-1"
    ok("iban", "mandate", "cabinet", IBAN_FR, "revoked", actor="admin@cabinet.fr")
    (row,) = rows(ClientIban)
    assert not row.active
    listing = ok("iban", "list", "cabinet").stdout
    assert IBAN_FR in listing and "revoked" in listing


def test_statement_sources(firm):
    refused("firm", "source-add", "cabinet", "banque", "--url", "http://127.0.0.1:9", "--token-stdin",
            input="short\n", actor="admin@cabinet.fr", expect="statement API token")
    ok("firm", "source-add", "cabinet", "banque", "--url", "http://127.0.0.1:9", "--token-stdin",
       input="a-firm-token-for-the-statement-api\n", actor="admin@cabinet.fr")
    ok("firm", "source-add", "cabinet", "depot", "--inbox", "depot", actor="sup@cabinet.fr")
    refused("firm", "source-add", "cabinet", "both", "--inbox", "x", "--url", "http://127.0.0.1:9", "--token-stdin",
            input="a-firm-token-for-the-statement-api\n", actor="sup@cabinet.fr", expect="not both")
    listing = ok("firm", "sources", "cabinet").stdout
    assert "cabinet/inbox/depot/" in listing and "http://127.0.0.1:9" in listing
    assert all(b"a-firm-token" not in entry.ciphertext for entry in rows(VaultEntry))


# -- statements parse: any file checked by hand -------------------------------------------------------------

FIXTURES = __import__("pathlib").Path(__file__).parent.parent / "fixtures" / "statements"


def test_statements_parse_prints_one_object_per_statement(firm):
    import json

    out = ok("statements", "parse", str(FIXTURES / "camt053_v04_two_accounts.xml")).stdout
    parsed = json.loads(out)
    assert len(parsed) == 2
    for item in parsed:
        assert {"iban", "currency", "opening_balance", "closing_balance", "entries", "period_start",
                "period_end"} <= item.keys()
    mt = json.loads(ok("statements", "parse", str(FIXTURES / "mt940_swift_blocks_crlf.sta")).stdout)
    assert all(item["iban"] == "FR7630004028170009876543292" for item in mt)


@pytest.mark.parametrize(("name", "expect"), [
    ("xxe.xml", "xxe.xml:"),
    ("billion_laughs.xml", "billion_laughs.xml:"),
    ("mt940_truncated.sta", "cut short"),
    ("releve_mars_2024.pdf", "PDF"),
    ("empty.sta", "empty"),
])
def test_statements_parse_refuses_bad_files_clearly(firm, name, expect):
    refused("statements", "parse", str(FIXTURES / name), expect=expect)


def test_statements_parse_prints_warnings_and_the_period_and_exits_0(firm):
    import json

    real = FIXTURES / "real"
    (statement,) = json.loads(ok("statements", "parse", str(real / "zilverline-mt940__deutsche_bank.txt")).stdout)
    assert statement["warnings"][0]["code"] == "balance_mismatch" and statement["warnings"][0]["message"]
    assert statement["period"] == {"start": "2014-03-24", "end": "2014-03-25"}  # :60F: of the 24th, :62M: of the 25th
    assert (statement["opening_balance"], statement["closing_balance"]) == ("0.00", "5.87")
    clean = json.loads(ok("statements", "parse", str(FIXTURES / "camt053_v02_single.xml")).stdout)
    assert clean[0]["warnings"] == []


def test_statements_parse_refuses_with_one_line(firm):
    result = refused("statements", "parse", str(FIXTURES / "real" / "jejik-mt940__K4262927_20200905-080000-952.txt"),
                     expect="cut short")
    assert len(result.stderr.strip().splitlines()) == 1


def test_statements_parse_missing_file(firm, tmp_path):
    refused("statements", "parse", str(tmp_path / "nope.xml"), expect="cannot read")
