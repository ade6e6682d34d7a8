"""Validate a CAMT.053 file against ISO 20022's own schema (tests/data/iso20022, see its README)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

SCHEMAS = Path(__file__).parent / "data" / "iso20022"


@cache
def _schema(version: str):
    from lxml import etree

    return etree.XMLSchema(etree.parse(str(SCHEMAS / f"{version}.xsd")))


def camt053_errors(data: bytes, version: str = "camt.053.001.02") -> list[str]:
    """The schema's complaints about ``data`` (empty when valid), each with its line."""
    from lxml import etree

    schema = _schema(version)
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    schema.validate(etree.fromstring(data, parser))
    return [f"line {error.line}: {error.message}" for error in schema.error_log]
