"""The sandbox statement source over HTTP (in-process TestClient) and the statement files it serves.

The files are checked by a small reading of our own (defusedxml for CAMT, a few lines for MT940),
not with :mod:`glaneur.statements`, so that the sandbox and the parsers check each other.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from xml.etree.ElementTree import Element
from zoneinfo import ZoneInfo

import defusedxml.ElementTree as SafeET
import httpx
import pytest
from fastapi.testclient import TestClient
from schwifty import IBAN

from sandbox.server import STATEMENT_DEFAULT_PORTS, SandboxHandle
from sandbox.statement_files import BankAccount, Entry, Statement, camt053, mt940
from sandbox.statements_source import (
    DEFAULT_TODAY,
    SANDBOX_CLIENT_IBANS,
    SANDBOX_SOURCE_TOKENS,
    SANDBOX_UNKNOWN_IBAN,
    create_statement_source_app,
)

TOKEN = SANDBOX_SOURCE_TOKENS["cabinet-demo"]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIST = "/api/v1/statement-files"


@pytest.fixture
def api() -> Iterator[TestClient]:
    with TestClient(create_statement_source_app()) as client:
        yield client


def listing(api: TestClient, after: str | None = None, **params: object) -> dict:
    response = api.get(LIST, headers=AUTH, params={**({"after": after} if after else {}), **params})
    assert response.status_code == 200, response.text
    return response.json()


def download(api: TestClient, file_id: str) -> httpx.Response:
    response = api.get(f"{LIST}/{file_id}", headers=AUTH)
    assert response.status_code == 200, response.text
    return response


def all_contents(api: TestClient) -> list[tuple[dict, bytes]]:
    return [(f, download(api, f["id"]).content) for f in listing(api)["files"]]


# -- the API --------------------------------------------------------------------------------


def test_the_source_lists_the_days_files_and_serves_them_with_the_token(api: TestClient) -> None:
    page = listing(api)

    files = page["files"]
    assert [f["format"] for f in files] == ["camt053", "camt053", "mt940", "camt053"]
    assert [f["name"] for f in files] == [
        "CAMT053_20261119_001.xml",
        "CAMT053_20261119_002.xml",
        "MT940_20261119_003.sta",
        "CAMT053_20261119_004.xml",
    ]
    assert page["next_cursor"] and page["has_more"] is False
    times = [dt.datetime.fromisoformat(f["available_at"]) for f in files]
    assert times == sorted(times) and all(t.date() == DEFAULT_TODAY for t in times)
    for described in files:
        response = download(api, described["id"])
        assert hashlib.sha256(response.content).hexdigest() == described["sha256"]
        assert len(response.content) == described["size"]
        expected = "application/xml" if described["format"] == "camt053" else "text/plain"
        assert response.headers["content-type"].startswith(expected)
        assert described["name"] in response.headers["content-disposition"]


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": "Basic " + TOKEN}]
)
def test_no_listing_or_download_without_a_known_bearer_token(api: TestClient, headers: dict[str, str]) -> None:
    file_id = listing(api)["files"][0]["id"]
    for path in (LIST, f"{LIST}/{file_id}"):
        response = api.get(path, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_an_unknown_file_is_404(api: TestClient) -> None:
    assert api.get(f"{LIST}/sf-19990101-1", headers=AUTH).status_code == 404


def test_the_cursor_returns_only_newer_files_and_the_clock_brings_the_next_days(api: TestClient) -> None:
    first = listing(api)
    cursor = first["next_cursor"]

    nothing = listing(api, cursor)
    assert nothing == {"files": [], "next_cursor": cursor, "has_more": False}

    moved = api.post("/_sandbox/clock", json={"today": "2026-11-21"}).json()
    assert moved["today"] == "2026-11-21" and len(moved["published"]) == 4

    newer = listing(api, cursor)
    assert len(newer["files"]) == 4
    assert {f["id"] for f in newer["files"]}.isdisjoint(f["id"] for f in first["files"])
    assert all(name.startswith(("CAMT053_20261120", "MT940_20261120")) for name in (f["name"] for f in newer["files"]))
    last = max(dt.datetime.fromisoformat(f["available_at"]) for f in first["files"])
    assert all(dt.datetime.fromisoformat(f["available_at"]) > last for f in newer["files"])
    assert listing(api, newer["next_cursor"])["files"] == []
    assert newer["next_cursor"] == newer["files"][-1]["id"]
    assert listing(api, newer["files"][1]["id"])["files"] == newer["files"][2:]  # any listed id is a cursor


def test_a_new_day_has_new_statements_for_the_same_accounts(api: TestClient) -> None:
    before = {f["sha256"] for f in listing(api)["files"]}
    api.post("/_sandbox/clock", json={"today": "2026-11-21"}).raise_for_status()
    day_two = [(f, content) for f, content in all_contents(api) if "20261120" in f["name"]]

    assert len(day_two) == 4 and before.isdisjoint(f["sha256"] for f, _ in day_two)
    ibans = set()
    for described, content in day_two:
        ibans |= {s.iban for s in read_statements(described["format"], content)}
    assert ibans == set(SANDBOX_CLIENT_IBANS) | {SANDBOX_UNKNOWN_IBAN}


def test_the_clock_jumps_several_days_and_never_publishes_a_day_twice(api: TestClient) -> None:
    assert len(api.post("/_sandbox/clock", json={"today": "2026-11-23"}).json()["published"]) == 12
    assert api.post("/_sandbox/clock", json={"today": "2026-11-21"}).json()["published"] == []
    assert api.post("/_sandbox/clock", json={"today": "2026-11-23"}).json()["published"] == []
    assert api.get("/_sandbox/clock").json() == {"today": "2026-11-23"}
    assert len(listing(api)["files"]) == 16
    assert api.post("/_sandbox/clock", json={"today": "2028-06-01"}).status_code == 422


def test_pages_follow_each_other(api: TestClient) -> None:
    api.post("/_sandbox/clock", json={"today": "2026-11-22"}).raise_for_status()
    seen, cursor = [], None
    while True:
        page = listing(api, cursor, limit=5)
        seen += [f["id"] for f in page["files"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert seen == [f["id"] for f in listing(api)["files"]] and len(seen) == 12


def test_a_cursor_the_api_never_gave_is_refused(api: TestClient) -> None:
    for cursor in ["nope", "%%%", "sf-19990101-1"]:
        assert api.get(LIST, headers=AUTH, params={"after": cursor}).status_code == 400


def test_files_are_the_same_bytes_in_every_fresh_source() -> None:
    with TestClient(create_statement_source_app()) as one, TestClient(create_statement_source_app()) as two:
        assert all_contents(one) == all_contents(two)


def test_an_injected_raw_file_is_served_after_the_others(api: TestClient) -> None:
    cursor = listing(api)["next_cursor"]
    truncated = b'<?xml version="1.0"?>\n<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmr'
    hostile_name = '../../etc/"passwd"\r\nX-Injected: yes.xml'
    samples = [
        (hostile_name, truncated, "camt053"),
        ("short.sta", b":20:X\r\n:25:FR76\r\n", "mt940"),
        ("mystery.bin", b"\x00\x01PK\x03\x04", "unknown"),
    ]
    for name, content, guessed in samples:
        body = {"firm": "cabinet-demo", "name": name, "content_base64": base64.b64encode(content).decode()}
        created = api.post("/_sandbox/files", json=body)
        assert created.status_code == 201 and created.json()["format"] == guessed

    newer = listing(api, cursor)["files"]
    assert [(f["name"], f["format"]) for f in newer] == [(n, g) for n, _, g in samples]
    served = download(api, newer[0]["id"])
    assert served.content == truncated
    assert "x-injected" not in served.headers and "\n" not in served.headers["content-disposition"]
    assert download(api, newer[2]["id"]).headers["content-type"] == "application/octet-stream"


def test_the_declared_format_of_an_injected_file_wins_over_the_guess(api: TestClient) -> None:
    body = {
        "firm": "cabinet-demo",
        "name": "x.xml",
        "content_base64": base64.b64encode(b"<a/>").decode(),
        "format": "camt053",
    }
    assert api.post("/_sandbox/files", json=body).json()["format"] == "camt053"


def test_raw_files_need_a_known_firm_and_valid_base64(api: TestClient) -> None:
    good = base64.b64encode(b"data").decode()
    assert api.post("/_sandbox/files", json={"firm": "nobody", "name": "a", "content_base64": good}).status_code == 404
    assert (
        api.post("/_sandbox/files", json={"firm": "cabinet-demo", "name": "a", "content_base64": "@@@"}).status_code
        == 422
    )


def test_an_outage_fails_the_next_requests_then_the_api_answers_again(api: TestClient) -> None:
    api.post("/_sandbox/outage", json={"fail_next": 2}).raise_for_status()

    assert api.get(LIST, headers=AUTH).status_code == 503
    assert api.get("/_sandbox/clock").status_code == 200  # the controls are not part of the outage
    assert api.get(f"{LIST}/sf-20261119-1", headers=AUTH).status_code == 503
    assert api.get(LIST, headers=AUTH).status_code == 200


def test_reset_brings_back_the_first_day(api: TestClient) -> None:
    first = listing(api)
    api.post("/_sandbox/clock", json={"today": "2026-11-25"}).raise_for_status()
    body = {"firm": "cabinet-demo", "name": "a", "content_base64": base64.b64encode(b"a").decode()}
    api.post("/_sandbox/files", json=body).raise_for_status()
    api.post("/_sandbox/outage", json={"fail_next": 5}).raise_for_status()

    assert api.post("/_sandbox/reset").json()["today"] == DEFAULT_TODAY.isoformat()
    assert listing(api) == first


def test_start_sandbox_serves_the_source(sandbox: SandboxHandle) -> None:
    url = sandbox.urls["statement-source"]
    httpx.post(f"{url}/_sandbox/reset", trust_env=False).raise_for_status()
    response = httpx.get(f"{url}{LIST}", headers=AUTH, trust_env=False)
    assert response.status_code == 200 and len(response.json()["files"]) == 4
    assert STATEMENT_DEFAULT_PORTS == {
        "statement-source": 8703,
        "partner-compta-express": 8704,
        "partner-tenue-plus": 8705,
    }


# -- the sandbox data -------------------------------------------------------------------------


def test_the_ibans_are_valid_mixed_and_the_unknown_one_is_no_client() -> None:
    assert len(SANDBOX_CLIENT_IBANS) >= 5 and SANDBOX_UNKNOWN_IBAN not in SANDBOX_CLIENT_IBANS
    for iban in [*SANDBOX_CLIENT_IBANS, SANDBOX_UNKNOWN_IBAN]:
        assert IBAN(iban).compact == iban
    assert {iban[:2] for iban in SANDBOX_CLIENT_IBANS} == {"FR", "BE", "DE"}
    assert all(name.strip() for name in SANDBOX_CLIENT_IBANS.values())


def test_the_days_files_cover_every_client_once_and_the_unknown_account_once(api: TestClient) -> None:
    statements = [s for f, content in all_contents(api) for s in read_statements(f["format"], content)]
    ibans = [s.iban for s in statements]
    assert sorted(ibans) == sorted([*SANDBOX_CLIENT_IBANS, SANDBOX_UNKNOWN_IBAN])
    versions = [namespace(content) for f, content in all_contents(api) if f["format"] == "camt053"]
    assert versions == ["camt.053.001.08", "camt.053.001.02", "camt.053.001.08"]


def test_balances_carry_over_from_one_day_to_the_next(api: TestClient) -> None:
    api.post("/_sandbox/clock", json={"today": "2026-11-23"}).raise_for_status()
    by_iban: dict[str, list[ReadStatement]] = {}
    for described, content in all_contents(api):
        for statement in read_statements(described["format"], content):
            by_iban.setdefault(statement.iban, []).append(statement)
    for iban, statements in by_iban.items():
        assert len(statements) == 4, iban
        for before, after in itertools.pairwise(statements):
            assert before.closing == after.opening, iban


def test_camt_files_are_well_formed_and_add_up(api: TestClient) -> None:
    api.post("/_sandbox/clock", json={"today": "2026-11-30"}).raise_for_status()
    camt = [(f, content) for f, content in all_contents(api) if f["format"] == "camt053"]
    assert len(camt) == 33
    for _, content in camt:
        assert content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
        for statement in read_camt(content):
            assert statement.entries and statement.closing == statement.opening + sum(statement.entries)


def test_camt_versions_differ_where_real_files_do() -> None:
    v08, v02 = (camt053([STATEMENT], version=v, message_id="M1", created_at=CREATED) for v in ("001.08", "001.02"))
    root08, root02 = SafeET.fromstring(v08), SafeET.fromstring(v02)

    assert (
        find(root08, "Acct/Svcr/FinInstnId/BICFI").text == "BNPAFRPP"
        and find(root08, "Acct/Svcr/FinInstnId/BIC") is None
    )
    assert (
        find(root02, "Acct/Svcr/FinInstnId/BIC").text == "BNPAFRPP"
        and find(root02, "Acct/Svcr/FinInstnId/BICFI") is None
    )
    assert find(root08, "Ntry/Sts/Cd").text == "BOOK" and find(root02, "Ntry/Sts").text == "BOOK"
    assert find(root08, "Ntry/NtryDtls/TxDtls/RltdPties/Dbtr/Pty/Nm").text == "Élise Dupré"
    assert find(root02, "Ntry/NtryDtls/TxDtls/RltdPties/Dbtr/Nm").text == "Élise Dupré"
    for root in (root08, root02):
        assert find(root, "Id").text == "ST1" and find(root, "ElctrncSeqNb").text == "7"
        assert find(root, "FrToDt/FrDtTm").text == "2026-03-02T00:00:00+01:00"
        assert find(root, "Acct/Id/IBAN").text == STATEMENT.account.iban and find(root, "Acct/Ccy").text == "EUR"
        [opening, closing] = [b for b in root.iter(f"{{{root.tag[1:].split('}')[0]}}}Bal")]
        assert text(opening, "Tp/CdOrPrtry/Cd") == "OPBD" and text(closing, "Tp/CdOrPrtry/Cd") == "CLBD"
        assert text(opening, "Amt") == "10.00" and text(opening, "CdtDbtInd") == "DBIT"  # an overdraft
        assert text(closing, "Amt") == "1189.50" and text(closing, "CdtDbtInd") == "CRDT"
        assert text(closing, "Dt/Dt") == "2026-03-02"
        entry = find(root, "Ntry")
        assert text(entry, "Amt") == "1234.56" and text(entry, "CdtDbtInd") == "CRDT"
        assert text(entry, "BookgDt/Dt") == "2026-03-02" and text(entry, "ValDt/Dt") == "2026-03-03"
        assert text(entry, "BkTxCd/Domn/Cd") == "PMNT" and text(entry, "BkTxCd/Domn/Fmly/Cd") == "RCDT"
        assert text(entry, "NtryDtls/TxDtls/RmtInf/Ustrd") == "Facture n°42 & co <urgent>"


def test_mt940_files_have_the_tags_and_add_up(api: TestClient) -> None:
    api.post("/_sandbox/clock", json={"today": "2026-11-30"}).raise_for_status()
    files = [content for f, content in all_contents(api) if f["format"] == "mt940"]
    assert len(files) == 11
    for content in files:
        assert b"\r\n" in content and b"\n" not in content.replace(b"\r\n", b"")
        content.decode("ascii")
        statements = read_mt940(content)
        assert len(statements) == 2
        for statement in statements:
            assert statement.entries and statement.closing == statement.opening + sum(statement.entries)


def test_mt940_writes_comma_amounts_yymmdd_dates_and_swift_characters() -> None:
    text_ = mt940([STATEMENT]).decode("ascii")
    lines = text_.split("\r\n")

    assert lines[:4] == [":20:ST1", f":25:{STATEMENT.account.iban}", ":28C:00007/1", ":60F:D260302EUR10,00"]
    assert lines[4] == ":61:2603030302C1234,56NTRFNONREF//BANKREF1"
    assert lines[5] == ":86:Elise Dupre / Facture n42 co urgent"  # accents dropped, outside SWIFT characters gone
    assert lines[-4:] == [":62F:C260302EUR1189,50", ":64:C260302EUR1189,50", "-", ""]
    assert all(len(line) <= 69 for line in lines)  # 65 characters of content after a 4-character tag


def test_long_remittance_wraps_on_lines_that_cannot_end_the_statement() -> None:
    entry = Entry(Decimal(-5), DAY, DAY, "word " * 30 + "- " * 40, "Someone", "REF")
    content = mt940([Statement(ACCOUNT, "ST2", 1, DAY, CREATED, Decimal(5), (entry,))])
    lines = content.decode().split("\r\n")

    start = next(i for i, line in enumerate(lines) if line.startswith(":86:"))
    details = lines[start : lines.index(":62F:C260302EUR0,00")]
    assert 1 < len(details) <= 6 and all(len(line) <= 65 for line in details[1:])
    assert lines.count("-") == 1 and not any(line.startswith("-") for line in details)
    assert read_mt940(content)[0].closing == 0


def test_the_writers_refuse_what_no_bank_writes() -> None:
    with pytest.raises(ValueError, match="version"):
        camt053([STATEMENT], version="001.04", message_id="M", created_at=CREATED)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one"):
        camt053([], version="001.08", message_id="M", created_at=CREATED)
    with pytest.raises(ValueError, match="timezone"):
        camt053([STATEMENT], version="001.08", message_id="M", created_at=dt.datetime(2026, 3, 3, 6))
    with pytest.raises(ValueError, match="16"):
        mt940([Statement(ACCOUNT, "X" * 17, 1, DAY, CREATED, Decimal(0), ())])


# -- a small reading of our own ------------------------------------------------------------------

DAY = dt.date(2026, 3, 2)
CREATED = dt.datetime(2026, 3, 3, 6, 0, tzinfo=ZoneInfo("Europe/Paris"))
ACCOUNT = BankAccount("FR7630004012340001029384732", "BNPAFRPP", "Boulangerie Martin")
STATEMENT = Statement(
    ACCOUNT,
    "ST1",
    7,
    DAY,
    CREATED,
    Decimal("-10.00"),
    (
        Entry(
            Decimal("1234.56"), DAY, DAY + dt.timedelta(days=1), "Facture n°42 & co <urgent>", "Élise Dupré", "BANKREF1"
        ),
        Entry(Decimal("-35.06"), DAY, DAY, "Abonnement", "Opérateur", "BANKREF2", "IDDT", "ESDD"),
    ),
)


@dataclass
class ReadStatement:
    iban: str
    opening: Decimal
    closing: Decimal
    entries: list[Decimal]


def read_statements(file_format: str, content: bytes) -> list[ReadStatement]:
    return read_camt(content) if file_format == "camt053" else read_mt940(content)


def namespace(content: bytes) -> str:
    return SafeET.fromstring(content).tag[1:].split("}")[0].rsplit(":", 1)[1]


def find(root: Element, path: str) -> Element | None:
    ns = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
    qualified = "/".join(f"{{{ns}}}{part}" for part in path.split("/"))
    return root.find(f".//{qualified}")


def text(element: Element, path: str) -> str:
    ns = element.tag[1:].split("}")[0]
    return element.find("/".join(f"{{{ns}}}{part}" for part in path.split("/"))).text


def read_camt(content: bytes) -> list[ReadStatement]:
    root = SafeET.fromstring(content)
    ns = root.tag[1:].split("}")[0]
    assert ns.startswith("urn:iso:std:iso:20022:tech:xsd:camt.053.001.")

    def q(path: str) -> str:
        return "/".join(f"{{{ns}}}{part}" for part in path.split("/"))

    assert root.find(q("BkToCstmrStmt/GrpHdr/MsgId")).text and root.find(q("BkToCstmrStmt/GrpHdr/CreDtTm")).text

    def signed(element: Element) -> Decimal:
        amount = Decimal(element.find(q("Amt")).text)
        assert element.find(q("Amt")).get("Ccy") == "EUR" and amount >= 0
        return amount if element.find(q("CdtDbtInd")).text == "CRDT" else -amount

    statements = []
    for stmt in root.findall(q("BkToCstmrStmt/Stmt")):
        for path in ("Id", "CreDtTm", "FrToDt/FrDtTm", "FrToDt/ToDtTm", "Acct/Ccy"):
            assert stmt.find(q(path)).text, path
        balances = {b.find(q("Tp/CdOrPrtry/Cd")).text: b for b in stmt.findall(q("Bal"))}
        assert set(balances) == {"OPBD", "CLBD"}
        assert all(dt.date.fromisoformat(b.find(q("Dt/Dt")).text) for b in balances.values())
        entries = []
        for entry in stmt.findall(q("Ntry")):
            for path in ("BookgDt/Dt", "ValDt/Dt", "BkTxCd/Domn/Cd", "NtryDtls/TxDtls/RmtInf/Ustrd"):
                assert entry.find(q(path)).text, path
            assert "BOOK" in "".join(entry.find(q("Sts")).itertext())
            entries.append(signed(entry))
        statements.append(
            ReadStatement(
                stmt.find(q("Acct/Id/IBAN")).text, signed(balances["OPBD"]), signed(balances["CLBD"]), entries
            )
        )
    return statements


_BALANCE = re.compile(r"([CD])(\d{6})([A-Z]{3})(\d+,\d{2})")
_LINE = re.compile(r"(\d{6})(\d{4})?(R?[CD])(\d+,\d{2})N[A-Z0-9]{3}")


def _amount(mark: str, digits: str) -> Decimal:
    value = Decimal(digits.replace(",", "."))
    return -value if mark.endswith("D") else value


def read_mt940(content: bytes) -> list[ReadStatement]:
    """Tags in the order banks write them; amounts with a comma; the statement ends on a '-' line."""
    statements, tags = [], []
    current: ReadStatement | None = None
    for line in content.decode("ascii").split("\r\n"):
        if line == "-" or line == "":
            if current is not None:
                assert [t for t in tags if t != "86"][:4] == ["20", "25", "28C", "60F"]
                assert tags[-2:] == ["62F", "64"]
                statements.append(current)
            current, tags = None, []
            continue
        match = re.match(r":(\d\d[A-Z]?):(.*)", line)
        if not match:  # continuation of :86:
            assert tags and tags[-1] == "86" and not line.startswith(("-", ":"))
            continue
        tag, value = match.groups()
        tags.append(tag)
        if tag == "20":
            current = ReadStatement("", Decimal(0), Decimal(0), [])
        elif tag == "25":
            current.iban = value
        elif tag == "28C":
            assert re.fullmatch(r"\d{1,5}(/\d{1,5})?", value)
        elif tag in ("60F", "62F", "64"):
            mark, day, _, digits = _BALANCE.fullmatch(value).groups()
            dt.datetime.strptime(day, "%y%m%d")
            if tag == "60F":
                current.opening = _amount(mark, digits)
            elif tag == "62F":
                current.closing = _amount(mark, digits)
            else:
                assert _amount(mark, digits) == current.closing
        elif tag == "61":
            day, _, mark, digits = _LINE.match(value).groups()
            dt.datetime.strptime(day, "%y%m%d")
            current.entries.append(_amount(mark, digits))
    assert current is None, "the last statement is not closed by a '-' line"
    return statements
