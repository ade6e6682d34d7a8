"""Bank statement files ("relevés de compte"): CAMT.053 and MT940, read into typed statements.

Pure functions from bytes to :class:`ParsedStatement`; no database, no storage, no Prefect.
"""

from glaneur.statements.detect import detect_format
from glaneur.statements.model import MAX_STATEMENT_FILE_BYTES, ParsedStatement, StatementFileError
from glaneur.statements.parse import parse_statement_file

__all__ = [
    "MAX_STATEMENT_FILE_BYTES",
    "ParsedStatement",
    "StatementFileError",
    "detect_format",
    "parse_statement_file",
]
