"""The CAMT.053 files Glaneur files for bank movements are valid against ISO 20022's own schema
(camt.053.001.02.xsd, vendored under tests/data/iso20022 with its source and licence).

An accounting tool that imports CAMT validates it first: a file the schema refuses is a day of
movements that never reaches the books. Checked over what ``to_camt053`` writes for the shapes
Powens gives: IBAN or account number only, booked, not booked yet, deleted, credits and debits,
empty and markup-laden wordings, long texts, and a day with no movement left to file.
"""

from __future__ import annotations

import hashlib
from datetime import date

from glaneur.bank import files as bank_files
from glaneur.models import BankAccount, BankMovement
from tests.camt_schema import camt053_errors

DAY = date(2026, 11, 20)


def movement(powens_id: int, amount: str, **fields) -> BankMovement:
    return BankMovement(bank_account_id=1, powens_id=powens_id, booking_date=fields.pop("booking_date", DAY),
                        amount=amount, **fields)


def camt(account: BankAccount, movements: list[BankMovement]) -> bytes:
    return bank_files.to_camt053(account, movements, DAY, created=f"{DAY.isoformat()}T23:59:59")


def test_the_schema_refuses_a_broken_file():
    """The validator can fail: an entry without its mandatory status is refused."""
    account = BankAccount(connection_id=1, powens_id=7, name="Compte", iban="FR7630004000010000000000100",
                          balance="10.00")
    good = camt(account, [movement(1, "-12.50", wording="CB", original_wording="CB", kind="card")])
    assert camt053_errors(good) == []
    broken = good.replace(b"<Sts>BOOK</Sts>", b"")
    assert any("Sts" in error for error in camt053_errors(broken))


def test_every_shape_of_movement_gives_a_valid_camt053():
    iban_account = BankAccount(connection_id=1, powens_id=7, name="Compte courant",
                               iban="FR7630004000010000000000100", balance="1234.56", currency="EUR")
    number_only = BankAccount(connection_id=1, powens_id=8, name="Livret", iban=None, number="00100001001",
                              balance="-20.00", currency="EUR")
    no_balance = BankAccount(connection_id=1, powens_id=9, name="Carte", iban=None, number=None, balance=None)
    spaced = BankAccount(connection_id=1, powens_id=10, name="Pro", iban="fr76 3000 4000 0100 0000 0000 100",
                         balance="5.00")
    movements = [
        movement(11, "-12.50", booking_date=date(2026, 11, 19), value_date=DAY, wording="Boulangerie <Martin> & fils",
                 original_wording="CB BOULANGERIE 19/11", kind="card", version=2),
        movement(12, "300.00", wording="Virement client", kind="transfer"),  # no original wording, as Powens may give
        movement(13, "-40.00", wording="", original_wording="", kind="", coming=True),  # nothing to say at all
        movement(14, "-99.00", wording="Supprimé", kind="card", deleted=True),
        movement(15, "0.01", wording="É" * 300, original_wording="&" * 600, kind="x&" * 30),  # long, cut before escaping
        movement(16, "-1500.10", wording="Frais", original_wording="FRAIS", kind="bank"),
    ]
    assert b"<IBAN>FR7630004000010000000000100</IBAN>" in camt(spaced, movements)
    for account in (iban_account, number_only, no_balance, spaced):
        assert camt053_errors(camt(account, movements)) == [], account.name
        assert camt053_errors(camt(account, [])) == [], f"{account.name}: a day with nothing to file"
        assert camt053_errors(camt(account, [movements[3]])) == [], f"{account.name}: only a deleted movement"


def test_a_number_too_long_for_othr_id_is_replaced_not_cut():
    """``Acct/Id/Othr/Id`` is Max34Text: two accounts whose numbers share their first 34 characters stay two
    accounts (their POWENS ids), and the full number stays in the file (``Acct/Nm``, ``AddtlStmtInf``)."""
    from lxml import etree

    shared = "CARTE-DIFFEREE-0001-0002-0003-0004"  # 34 characters
    assert len(shared) == 34
    first = BankAccount(connection_id=1, powens_id=21, name="Carte A", number=shared + "-A", balance="1.00")
    second = BankAccount(connection_id=1, powens_id=22, name="Carte B", number=shared + "-B", balance="1.00")
    fits = BankAccount(connection_id=1, powens_id=23, name="Carte C", number=shared, balance="1.00")
    huge = BankAccount(connection_id=1, powens_id=24, name="Contrat", number="N" * 80, balance="1.00")
    absurd = BankAccount(connection_id=1, powens_id=25, name="Contrat", number="9" * 600, balance="1.00")
    not_an_iban = BankAccount(connection_id=1, powens_id=26, name="Compte", iban="FR76 <&> " + "1" * 40, balance="1.00")
    entries = [movement(31, "-5.00", wording="CB", original_wording="CB", kind="card")]
    ns = {"c": bank_files.CAMT_NAMESPACE}

    def account_of(data: bytes) -> tuple[str, str | None, str | None, str | None, str | None]:
        root = etree.fromstring(data)
        return (root.findtext(".//c:Acct/c:Id/c:Othr/c:Id", namespaces=ns),
                root.findtext(".//c:Acct/c:Id/c:Othr/c:SchmeNm/c:Prtry", namespaces=ns),
                root.findtext(".//c:Acct/c:Id/c:Othr/c:Issr", namespaces=ns),
                root.findtext(".//c:Acct/c:Nm", namespaces=ns),
                root.findtext(".//c:Stmt/c:AddtlStmtInf", namespaces=ns))

    files = {account.powens_id: camt(account, entries) for account in (first, second, fits, huge, absurd, not_an_iban)}
    for powens_id, data in files.items():
        assert camt053_errors(data) == [], powens_id
    assert account_of(files[21]) == ("POWENS-21", "POWENS-ACCOUNT-ID", "POWENS", first.number,
                                     f"Numéro de compte : {first.number}")
    assert account_of(files[22])[0] == "POWENS-22"  # not the same account as 21, as cutting would have made it
    assert account_of(files[23]) == (shared, None, None, None, None)  # a number that fits is written as it is
    identifier, _, _, name, said = account_of(files[24])
    assert identifier == "POWENS-24" and name is None and said == f"Numéro de compte : {'N' * 80}"  # over Max70Text
    identifier, _, _, name, said = account_of(files[25])
    assert identifier == "POWENS-25" and name is None and len(said) <= 500
    assert "600 caractères" in said and hashlib.sha256(absurd.number.encode()).hexdigest() in said
    assert account_of(files[26])[3] == not_an_iban.iban  # escaped, kept whole
    # CSV and OFX keep the full number: OFX in ACCTID, and both in the day's file names.
    assert f"<ACCTID>{absurd.number}</ACCTID>" in bank_files.to_ofx(absurd, entries, DAY).decode()
    keys = [bank_files.file_keys(organization="o", binder="b", channel="c", account=a, day=DAY)["csv"]
            for a in (first, second)]
    assert keys[0] != keys[1]
