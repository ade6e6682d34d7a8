"""Reading a statement file whatever its format: one :class:`ParsedStatement` per statement."""

from __future__ import annotations

from glaneur.statements.camt import parse_camt
from glaneur.statements.detect import check_size, sniff
from glaneur.statements.model import MAX_STATEMENT_FILE_BYTES, ParsedStatement
from glaneur.statements.mt940 import parse_mt940


def parse_statement_file(data: bytes, *, max_bytes: int = MAX_STATEMENT_FILE_BYTES) -> list[ParsedStatement]:
    """Every statement of a CAMT.053 or MT940 file, in file order; raises StatementFileError.

    The whole file is refused at the first statement that cannot be read: filing the readable
    part of a broken file would leave a silent gap in the account's history.
    """
    check_size(data, max_bytes)
    if sniff(data) == "xml":
        return parse_camt(data)
    return parse_mt940(data)
