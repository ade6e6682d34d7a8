"""The secret scan's own check: a secret planted in each form, inside other text, is found; other text is not."""

from __future__ import annotations

import base64
import io
import sqlite3
import zipfile
from contextlib import closing
from urllib.parse import quote, quote_plus

import pytest

from tests.secret_scan import Scanner, forms

SECRET = "Mot de passe/é+&=?%Sécret-42"
PADDINGS = [b"", b"a", b"ab"]  # the three alignments of a secret inside base64 text


def planted() -> dict[str, bytes]:
    raw = SECRET.encode()
    texts = {
        "plain": raw,
        "url": quote(SECRET, safe="").encode(),
        "url_plus": quote_plus(SECRET).encode(),
        "hex": raw.hex().encode(),
        "HEX": raw.hex().upper().encode(),
    }
    for pad in PADDINGS:
        for suffix in (b"", b"z", b"zz"):
            texts[f"b64 {pad!r} {suffix!r}"] = base64.b64encode(b"header:" + pad + raw + suffix)
            texts[f"b64url {pad!r} {suffix!r}"] = base64.urlsafe_b64encode(b'{"k":"' + pad + raw + suffix + b'"}')
    return texts


@pytest.mark.parametrize("name", sorted(planted()))
def test_a_planted_secret_is_found_in_each_form(name):
    scanner = Scanner({"password": SECRET})
    scanner.scan_bytes("somewhere", b"before " + planted()[name] + b" after")
    assert scanner.hits, f"the {name} form was missed"
    assert scanner.hits[0].place == "somewhere"


def test_other_text_is_no_hit():
    scanner = Scanner({"password": SECRET, "code": "123456"})
    other = b"Mot de passe oublie ? 2026-12-02T04:41:23.1234567 id a123456b " + base64.b64encode(b"x" * 90)
    scanner.scan_bytes("elsewhere", other)
    assert scanner.hits == []


def test_a_short_code_is_found_in_clear_on_its_own_only():
    scanner = Scanner({"code": "123456"})
    scanner.scan_bytes("input", b'{"code": "123456"}')
    scanner.scan_bytes("number", b"91234567")
    scanner.scan_bytes("timestamp", b"2026-12-02 04:41:23.123456+00:00")
    assert [(hit.place, hit.form) for hit in scanner.hits] == [("input", "plain")]
    assert list(forms("123456")) == ["plain"]


def test_zip_members_and_sqlite_cells_are_searched(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("trace.network", b'{"postData":"' + quote_plus(SECRET).encode() + b'"}')
    database = tmp_path / "db.sqlite"
    with closing(sqlite3.connect(database)) as connection:
        connection.execute("CREATE TABLE log (message TEXT, blob BLOB)")
        connection.execute("INSERT INTO log VALUES ('nothing', ?)", (base64.b64encode(b"x" + SECRET.encode()),))
        connection.commit()
    (tmp_path / "trace.zip").write_bytes(buffer.getvalue())
    scanner = Scanner({"password": SECRET})
    scanner.scan_tree(tmp_path, skip=lambda path: path.suffix == ".sqlite")
    assert scanner.scan_sqlite("glaneur", database) == ["log"]
    assert {hit.place for hit in scanner.hits} == {f"{tmp_path / 'trace.zip'}!trace.network", "glaneur:log.blob#0"}
