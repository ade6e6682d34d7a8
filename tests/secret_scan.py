"""Search bytes, files, zips and SQLite databases for secrets in the forms a leak takes.

Each secret is looked for as is, URL-encoded (quote and quote_plus), hex (lower and upper case) and base64 (standard
and URL-safe alphabets, at each of the 3 alignments a secret can have inside a longer base64 text). A hit says where
(the place given by the caller: file, zip member, table.column#rowid) and in which form.

Short secrets (the 6-digit codes of a second factor) would match at random in the encoded forms and inside longer
numbers: they are looked for in clear only, and only where no letter or digit touches them (nor a '.' before).
"""

from __future__ import annotations

import base64
import io
import re
import sqlite3
import zipfile
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

SHORT = 12  # below this length, a secret is looked for in clear only, on word boundaries


def _base64_fragments(secret: bytes, alphabet: str) -> list[bytes]:
    """The part of base64(prefix + secret + suffix) that depends only on the secret, for the 3 alignments."""
    encode = base64.b64encode if alphabet == "standard" else base64.urlsafe_b64encode
    fragments = []
    for shift in range(3):
        # With `shift` bytes before it in its 3-byte group, the first 1 or 2 chars mix in the prefix's bits, and
        # the last incomplete group mixes in what follows: keep the chars made of the secret's bits only.
        encoded = encode(b"\0" * shift + secret)
        start = {0: 0, 1: 2, 2: 3}[shift]
        end = (len(secret) + shift) // 3 * 4
        fragments.append(encoded[start:end])
    return fragments


def forms(secret: str) -> dict[str, bytes]:
    """Every form of ``secret`` that the scan looks for, name -> bytes."""
    raw = secret.encode()
    if len(raw) < SHORT:
        return {"plain": raw}
    found = {
        "plain": raw,
        "url": quote(secret, safe="").encode(),
        "url_plus": quote_plus(secret).encode(),
        "hex": raw.hex().encode(),
        "HEX": raw.hex().upper().encode(),
    }
    for alphabet in ("standard", "urlsafe"):
        for shift, fragment in enumerate(_base64_fragments(raw, alphabet)):
            found[f"base64_{alphabet}_{shift}"] = fragment
    return {name: value for name, value in found.items() if name == "plain" or value != raw}


@dataclass(frozen=True)
class Hit:
    place: str
    secret_label: str
    form: str
    context: bytes = b""  # what surrounds it, the secret itself masked


class Scanner:
    """Secrets (label -> value) and the places searched so far, with the hits."""

    def __init__(self, secrets: dict[str, str]):
        self.secrets = secrets
        self.patterns: list[tuple[str, str, re.Pattern[bytes]]] = []
        for label, value in secrets.items():
            assert value, f"secret {label} is empty"
            for name, form in forms(value).items():
                if len(value.encode()) < SHORT:
                    # Not after a '.', either: a timestamp's microseconds are 6 digits too.
                    pattern = re.compile(rb"(?<![A-Za-z0-9.])" + re.escape(form) + rb"(?![A-Za-z0-9])")
                else:
                    pattern = re.compile(re.escape(form), re.IGNORECASE if name.startswith(("hex", "HEX")) else 0)
                self.patterns.append((label, name, pattern))
        self.hits: list[Hit] = []
        self.searched: list[str] = []
        self.bytes = 0

    def scan_bytes(self, place: str, data: bytes) -> None:
        self.searched.append(place)
        self.bytes += len(data)
        for label, name, pattern in self.patterns:
            found = pattern.search(data)
            if found:
                around = data[max(found.start() - 80, 0):found.end() + 80]
                around = around.replace(found.group(), b"<" + label.encode() + b">")
                self.hits.append(Hit(place, label, name, around))
        if data[:4] == b"PK\x03\x04":  # a zip (a Playwright trace): every member too
            try:
                archive = zipfile.ZipFile(io.BytesIO(data))
            except zipfile.BadZipFile:
                return
            for member in archive.namelist():
                self.scan_bytes(f"{place}!{member}", archive.read(member))

    def scan_tree(self, root: Path, *, skip=lambda path: False) -> None:
        for path in sorted(root.rglob("*")):
            if path.is_file() and not skip(path):
                self.scan_bytes(str(path), path.read_bytes())

    def scan_sqlite(self, name: str, database: Path) -> list[str]:
        """Every column of every row of every table; returns the tables read."""
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)) as connection:
            tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                cursor = connection.execute(f'SELECT * FROM "{table}"')
                columns = [column[0] for column in cursor.description]
                for number, row in enumerate(cursor):
                    for column, value in zip(columns, row):
                        if value is None:
                            continue
                        data = value if isinstance(value, bytes) else str(value).encode()
                        self.scan_bytes(f"{name}:{table}.{column}#{number}", data)
        return tables

    def report(self) -> str:
        return "\n".join(f"{hit.secret_label} as {hit.form} in {hit.place}: {hit.context!r}" for hit in self.hits)
