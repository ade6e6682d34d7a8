"""The bank side's domain: referential and rights, consent, movements bookkeeping, the daily files."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlmodel import select

from connectors.powens import BankAccount as RemoteAccount
from connectors.powens import Transaction
from glaneur import admin, bank
from glaneur.bank import files as bank_files
from glaneur.db import session_scope
from glaneur.errors import UsageError
from glaneur.models import AuditLog, BankConsentState, VaultEntry


@pytest.fixture
def acme(glaneur_home):
    with session_scope() as session:
        admin.create_organization(session, "acme", "ACME")
        anne = admin.create_user(session, "acme", "anne@acme.example", "Anne", ["configure_accounting"])
        admin.create_user(session, "acme", "bob@acme.example", "Bob", [], actor=anne)
        admin.create_binder(session, "acme", "banque", "Banque", actor=anne)
    return glaneur_home


def _user(session, email):
    return admin.get_user(session, "acme", email)


def _consented_connection(session, bank_name: str):
    """Anne adds the bank to the referential, gives the holder's consent and checks a new connection:
    (anne, the consent, the checked connection request)."""
    anne = _user(session, "anne@acme.example")
    found = bank.add_bank(session, "acme", bank_name, actor=anne)
    org = admin.get_organization(session, "acme")
    consent = bank.record_consent(session, org, found, holder_email=anne.email, given=True, actor=anne,
                                  text=bank.consent_text(org, found))
    new = bank.check_new_connection(session, "acme", bank_name, binder="banque", recipient=anne.email, actor=anne)
    return anne, consent, new


def test_the_referential_comes_first_and_needs_the_accounting_right(acme):
    with session_scope() as session:
        with pytest.raises(UsageError, match="Autoriser l'accès au paramétrage de la comptabilité"):
            bank.add_bank(session, "acme", "Banque Exemple", actor=_user(session, "bob@acme.example"))
        with pytest.raises(UsageError, match="Add it first, before any connection"):
            bank.check_new_connection(session, "acme", "Banque Exemple", binder="banque",
                                      recipient="anne@acme.example", actor=_user(session, "anne@acme.example"))
        bank.add_bank(session, "acme", "Banque Exemple", actor=_user(session, "anne@acme.example"))
        with pytest.raises(UsageError, match="already in the referential"):
            bank.add_bank(session, "acme", "banque  EXEMPLE", actor=_user(session, "anne@acme.example"))
        assert bank.get_bank(session, "acme", "BANQUE exemple").name == "Banque Exemple"
        assert [a.action for a in session.exec(select(AuditLog)).all()][-1] == "bank.add"


def test_consent_records_the_exact_text_and_refuses_another(acme):
    with session_scope() as session:
        anne = _user(session, "anne@acme.example")
        found = bank.add_bank(session, "acme", "Banque Exemple", actor=anne)
        org = admin.get_organization(session, "acme")
        text = bank.consent_text(org, found)
        assert bank.GDPR_WARNING in text and "Banque Exemple" in text
        with pytest.raises(UsageError, match="not the current one"):
            bank.record_consent(session, org, found, holder_email="anne@acme.example", given=True, actor=anne,
                                text=text + " ")
        consent = bank.record_consent(session, org, found, holder_email="Anne@Acme.example", given=True, actor=anne,
                                      text=text)
        assert consent.state == BankConsentState.GIVEN and consent.holder_user_id == anne.id
        assert consent.holder_email == "anne@acme.example" and len(consent.text_sha256) == 64


def test_the_holder_may_withdraw_their_consent_without_the_accounting_right(acme):
    """The consent text says "Je peux retirer ce consentement à tout moment": so the holder can, by option 2
    a user without the accounting right; another such user cannot."""
    with session_scope() as session:
        anne = _user(session, "anne@acme.example")
        admin.create_user(session, "acme", "carl@acme.example", "Carl", [], actor=anne)
        bank.add_bank(session, "acme", "Banque Exemple", actor=anne)
        new = bank.check_new_connection(session, "acme", "Banque Exemple", binder="banque", recipient=anne.email,
                                        actor=anne)
        channel, connection = bank.create_invited_channel(session, new, holder=_user(session, "bob@acme.example"),
                                                          powens_connector_id=1)
        slug = channel.slug
        with pytest.raises(UsageError, match="accounting|comptabilité"):  # no consent yet: the right is needed
            bank.check_revoker(session, slug, _user(session, "bob@acme.example"))
        bank.holder_consents(session, connection, "bob@acme.example", given=True)
    with session_scope() as session:
        with pytest.raises(UsageError, match="accounting|comptabilité"):
            bank.revoke_consent(session, slug, actor=_user(session, "carl@acme.example"))
    with session_scope() as session:
        bank.revoke_consent(session, slug, actor=_user(session, "bob@acme.example"))
        consent = session.get(bank.BankConsent, bank.get_connection(session, slug, deleted_ok=True)[1].consent_id)
        assert consent.state == BankConsentState.REVOKED and consent.revoked_by_user_id == _user(session, "bob@acme.example").id


def _transaction(id_: int, value: str, coming: bool, wording: str = "Boulangerie") -> Transaction:
    return Transaction(id=id_, id_account=7, date=date(2026, 11, 20), rdate=None, vdate=None, value=Decimal(value),
                       wording=wording, original_wording=wording.upper(), type="card", coming=coming, deleted=False,
                       last_update=datetime(2026, 11, 20, 8, tzinfo=UTC))


def test_movements_are_unique_by_powens_id_and_updates_bump_the_version(acme):
    with session_scope() as session:
        anne, consent, new = _consented_connection(session, "Connecteur de test")
        _, connection = bank.create_connection(session, new, consent=consent, powens_user_id=1, token="tok-secret",
                                               powens_connection_id=5, powens_connector_id=40,
                                               settings=bank.PowensSettings())
        accounts = bank.record_accounts(session, connection, [RemoteAccount(7, 5, "Compte", "001", "FR7630004000010000000000100",
                                                                            Decimal("10.00"), "EUR", False)])
        tally = bank.Tally()
        page = [_transaction(1, "-12.5", True), _transaction(2, "30", False), _transaction(1, "-12.5", True)]
        bank.upsert_movements(session, accounts, page, None, tally)
        assert (tally.new, tally.updated, tally.unchanged) == (2, 0, 0)  # the repeated item counted once
        tally = bank.Tally()
        bank.upsert_movements(session, accounts, [_transaction(1, "-12.5", False), _transaction(2, "30", False)],
                              None, tally)
        assert (tally.new, tally.updated, tally.unchanged) == (0, 1, 1)
        account = accounts[7]
        pending = bank.movements_to_file(session, account)
        assert {(m.powens_id, m.version) for m in pending} == {(1, 2), (2, 1)}
        bank.mark_filed(session, pending)
        assert bank.movements_to_file(session, account) == []
        assert connection.token_ref and bank.read_token(session, connection) == "tok-secret"
        assert all(b"tok-secret" not in entry.ciphertext for entry in session.exec(select(VaultEntry)).all())


def test_daily_files_are_deterministic_and_safe_in_a_spreadsheet(acme):
    from glaneur.models import BankAccount, BankMovement

    account = BankAccount(connection_id=1, powens_id=7, name="Compte", iban="FR7630004000010000000000100",
                          balance="10.00")
    movements = [BankMovement(bank_account_id=1, powens_id=1, booking_date=date(2026, 11, 20), amount="-12.50",
                              wording="=HYPERLINK(\"http://x\")", original_wording="CB <X>", kind="card")]
    csv_bytes = bank_files.to_csv(movements)
    assert csv_bytes == bank_files.to_csv(movements)
    assert "'=HYPERLINK" in csv_bytes.decode() and ";-12.50;" in csv_bytes.decode()
    ofx = bank_files.to_ofx(account, movements, date(2026, 11, 20)).decode()
    assert "<TRNAMT>-12.50</TRNAMT>" in ofx and "CB &lt;X&gt;" in ofx and "<FITID>1-1</FITID>" in ofx
    keys = bank_files.file_keys(organization="acme", binder="banque", channel="acme-c", account=account,
                                day=date(2026, 11, 20))
    # The storage layout of every document: the sanitised reference, then a short hash of the raw one.
    assert re.fullmatch(
        r"acme/banque/acme-c/2026/11/2026-11-20_powens_FR7630004000010000000000100-movements_[0-9a-f]{8}\.csv",
        keys["csv"],
    )
    second = bank_files.file_keys(organization="acme", binder="banque", channel="acme-c", account=account,
                                  day=date(2026, 11, 20), part=2)["ofx"]
    assert re.search(r"-movements-part2_[0-9a-f]{8}\.ofx$", second) and second != keys["ofx"]


def test_the_camt053_file_reads_back_through_the_statement_parser():
    """CAMT.053 beside CSV and OFX: well-formed, and the project's own CAMT reader (what routes banks'
    statements) finds the account, the balances, every entry with its sign and reference, and no warning."""
    from xml.etree import ElementTree

    from glaneur.models import BankAccount, BankMovement
    from glaneur.statements.parse import parse_statement_file
    from sandbox.powens.state import _iban

    iban = _iban("00100001000")
    account = BankAccount(connection_id=1, powens_id=7, name="Compte", iban=iban, balance="1234.56", currency="EUR")
    day = date(2026, 11, 20)
    movements = [
        BankMovement(bank_account_id=1, powens_id=11, booking_date=date(2026, 11, 19), value_date=date(2026, 11, 20),
                     amount="-12.50", wording="Boulangerie <Martin> & fils", original_wording="CB BOULANGERIE",
                     kind="card", version=2),
        BankMovement(bank_account_id=1, powens_id=12, booking_date=day, amount="300.00", wording="Virement client",
                     kind="transfer"),
        BankMovement(bank_account_id=1, powens_id=13, booking_date=day, amount="-40.00", wording="Pas encore passé",
                     kind="card", coming=True),
        BankMovement(bank_account_id=1, powens_id=14, booking_date=day, amount="-99.00", wording="Supprimé",
                     kind="card", deleted=True),
    ]
    data = bank_files.to_camt053(account, movements, day, created="2026-11-20T23:59:59")
    assert data == bank_files.to_camt053(account, movements, day, created="2026-11-20T23:59:59")
    root = ElementTree.fromstring(data)
    assert root.tag == "{urn:iso:std:iso:20022:tech:xsd:camt.053.001.02}Document"
    [statement] = parse_statement_file(data)
    assert statement.format == "camt.053.001.02" and statement.iban == iban and statement.currency == "EUR"
    assert statement.closing_balance == Decimal("1234.56")
    assert statement.opening_balance == Decimal("1234.56") - Decimal("287.50")  # the booked entries only
    assert statement.entries == 3 and not statement.warnings, statement.warnings
    assert [(m.amount, m.reference) for m in statement.movements] == [
        (Decimal("-12.50"), "11-2"), (Decimal("300.00"), "12-1"), (Decimal("-40.00"), "13-1")]
    assert statement.period_start == date(2026, 11, 19) and statement.period_end == day
    keys = bank_files.file_keys(organization="acme", binder="banque", channel="acme-c", account=account, day=day)
    assert set(keys) == {"csv", "ofx", "xml"} and keys["xml"].endswith(".xml")


def test_doctor_compares_the_movements_with_the_statement_of_the_same_iban(acme):
    """Item 8: the firm side receives statements for the IBAN POWENS also collects; doctor names what is
    missing on either side and a closing balance that disagrees, and says OK when both agree."""
    from glaneur.bank.doctor import compare_with_statements
    from glaneur.doctor import Verdict
    from glaneur.models import BankAccount, BankMovement, Statement, StatementFile, StatementFileState
    from glaneur.settings import get_settings
    from glaneur.storage import get_storage
    from sandbox.powens.state import _iban

    iban = _iban("00100001000")
    day = date(2026, 11, 20)
    with session_scope() as session:
        anne = admin.get_user(session, "acme", "anne@acme.example")
        found = bank.add_bank(session, "acme", "Banque Exemple", actor=anne)
        new = bank.check_new_connection(session, "acme", "Banque Exemple", binder="banque",
                                        recipient="anne@acme.example", actor=anne)
        channel, connection = bank.create_invited_channel(session, new, holder=anne, powens_connector_id=41)
        account = BankAccount(connection_id=connection.id, powens_id=7, name="Compte", iban=iban, balance="1000.00")
        session.add(account)
        session.flush()
        rows = [  # (powens id, booking date, amount, coming)
            (1, date(2026, 11, 18), "-20.00", False), (2, date(2026, 11, 19), "150.00", False),
            (3, date(2026, 11, 19), "-7.30", False), (4, date(2026, 11, 21), "-50.00", False),  # after the statement
            (5, date(2026, 11, 19), "-1.00", True),  # not booked: never compared
        ]
        for powens_id, booked, amount, coming in rows:
            session.add(BankMovement(bank_account_id=account.id, powens_id=powens_id, booking_date=booked,
                                     amount=amount, wording=f"op {powens_id}", kind="card", coming=coming))
        session.flush()
        # The bank's statement up to the 20th: closing 1050.00 (1000 now, less the 21st's -50), and an
        # entry POWENS lacks (-3.00) where POWENS has -7.30 that the statement lacks.
        statement_movements = [m for m in bank.movements(session, account) if m.powens_id in (1, 2)]
        statement_movements.append(BankMovement(bank_account_id=account.id, powens_id=99, booking_date=day,
                                                amount="-3.00", wording="frais", kind="fee"))
        stated = BankAccount(connection_id=connection.id, powens_id=7, name="Compte", iban=iban, balance="1050.00")
        content = bank_files.to_camt053(stated, statement_movements, day, created="2026-11-20T23:59:59")
        key = "acme/_statements/camt.xml"
        get_storage(get_settings()).put(key, content, metadata={})
        statement_file = StatementFile(organization_id=channel.organization_id, source_name="camt.xml",
                                       sha256="x", size=len(content), storage_key=key,
                                       state=StatementFileState.PARSED)
        session.add(statement_file)
        session.flush()
        session.add(Statement(organization_id=channel.organization_id, file_id=statement_file.id, account=iban,
                              iban=iban, currency="EUR", statement_ref="POWENS-7-20261120", format="camt.053.001.02",
                              period_start=date(2026, 11, 18), period_end=day, opening_balance="923.00",
                              closing_balance="1050.00", entries=3, sha256="x", fingerprint="f", storage_key=key))
        session.flush()
        [check] = compare_with_statements(session, channel, [account])
        assert check.verdict == Verdict.WARN
        assert "1 statement entr(y/ies) without a POWENS movement (2026-11-20 -3.00" in check.detail
        assert "1 POWENS movement(s) not in the statement (2026-11-19 -7.30 op 3)" in check.detail
        assert "closing balance 1050.00 in the statement" not in check.detail  # the balance agrees

        session.delete(session.get(BankMovement, next(m.id for m in bank.movements(session, account)
                                                      if m.powens_id == 3)))
        session.add(BankMovement(bank_account_id=account.id, powens_id=6, booking_date=day, amount="-3.00",
                                 wording="frais", kind="fee"))
        account.balance = "996.70"  # a balance off by 3.00 (the fee above was counted twice)
        session.flush()
        [check] = compare_with_statements(session, channel, [account])
        assert check.verdict == Verdict.WARN and "without" not in check.detail and "not in the" not in check.detail
        assert "closing balance 1050.00 in the statement, 1046.70 from POWENS on 2026-11-20" in check.detail
        account.balance = "1000.00"
        session.flush()
        [check] = compare_with_statements(session, channel, [account])
        assert check.verdict == Verdict.OK and "3 entries and closing balance match" in check.detail


def test_the_holder_is_told_in_one_sentence_what_happened_and_what_to_do(acme, monkeypatch):
    """The reconnect mail: which bank stopped and why, that it is addressed to the account holder, and what to
    do (the link, how long it works, the POWENS page), in one sentence as the help pages put it."""
    from glaneur.models import Notification

    monkeypatch.delenv("GLANEUR_SMTP_HOST", raising=False)
    with session_scope() as session:
        anne, consent, new = _consented_connection(session, "Banque Exemple")
        channel, connection = bank.create_connection(session, new, consent=consent, powens_user_id=1, token="t",
                                                     powens_connection_id=5, powens_connector_id=41,
                                                     settings=bank.PowensSettings())
        for state, reason in (("SCARequired", "valider à nouveau l'accès"), ("wrongpass", "refuse le mot de passe")):
            bank.record_state(session, connection, state, "from the bank")
            assert bank.tell_holder_to_reconnect(session, channel, connection, "https://glaneur.example/r?sig=x")
            notice = session.exec(select(Notification).order_by(Notification.id.desc())).first()
            assert notice.user_id == anne.id and notice.kind == "bank_reconnect"
            assert notice.link == "https://glaneur.example/r?sig=x"
            assert "Banque Exemple" in notice.subject and "reconnectez" in notice.subject
            body = notice.body
            assert body.startswith("Banque Exemple a interrompu la récupération automatique des mouvements")
            assert "ACME" in body and reason in body and "en tant que titulaire du compte" in body
            assert "ouvrez le lien ci-dessous dans les 7 jours et suivez la page POWENS" in body
            assert body.endswith(".") and body.count(".") == 1 and "\n" not in body  # one sentence


def test_doctor_says_whether_powens_still_accepts_the_bank(acme):
    """The bank's POWENS connector as POWENS lists it (the sandbox's own payloads through the client's parser):
    open is ok; restricted after the connection is a warning (it keeps collecting, a new connection would be
    refused); restricted while the channel still waits for its connection, or no longer listed, fails; POWENS
    away is a warning, never a crash. Each with the help page's advice."""
    from dataclasses import replace

    from connectors import powens
    from glaneur.bank.doctor import diagnose_bank
    from glaneur.doctor import Verdict
    from glaneur.errors import PortalUnavailable
    from sandbox.powens.state import CONNECTORS

    def listed(*, restricted: bool) -> list:
        payloads = [replace(c, restricted=restricted and c.id == 40).payload() for c in CONNECTORS]
        return powens.parse_list({"connectors": payloads}, "connectors", powens.parse_connector)

    def away() -> list:
        raise PortalUnavailable("Powens could not be reached (ConnectError).")

    with session_scope() as session:
        _, consent, new = _consented_connection(session, "Connecteur de test")
        channel, connection = bank.create_connection(session, new, consent=consent, powens_user_id=1, token="tok",
                                                     powens_connection_id=5, powens_connector_id=40,
                                                     settings=bank.PowensSettings())

        def check(powens_connectors):
            checks = {c.name: c for c in diagnose_bank(session, channel, datetime.now(UTC),
                                                        powens_connectors=powens_connectors)}
            return checks.get("POWENS bank")

        assert check(None) is None  # not asked: not checked
        open_ = check(lambda: listed(restricted=False))
        assert open_.verdict == Verdict.OK and "'Connecteur de test' (POWENS connector 40) accepts" in open_.detail
        restricted = check(lambda: listed(restricted=True))
        assert restricted.verdict == Verdict.WARN and "is restricted" in restricted.detail
        assert "POWENS connection 5 keeps collecting" in restricted.detail and restricted.fix == bank.RESTRICTED_IN_POWENS
        unreachable = check(away)
        assert unreachable.verdict == Verdict.WARN and "could not be asked" in unreachable.detail
        connection.powens_connection_id = None  # an invited channel, its holder not connected yet
        waiting = check(lambda: listed(restricted=True))
        assert waiting.verdict == Verdict.FAIL and "would be refused" in waiting.detail
        gone = check(lambda: [c for c in listed(restricted=False) if c.id != 40])
        assert gone.verdict == Verdict.FAIL and gone.fix == bank.NOT_IN_POWENS
