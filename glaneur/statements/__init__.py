"""Bank statements for accounting firms: read the files, route each to its client, deliver it.

- the files ("relevés de compte"): :mod:`~glaneur.statements.detect`, :mod:`~glaneur.statements.camt`,
  :mod:`~glaneur.statements.mt940`, :mod:`~glaneur.statements.parse` and :mod:`~glaneur.statements.model`,
  pure functions from bytes to :class:`ParsedStatement` (no database, no storage, no Prefect),
  re-exported here;
- :mod:`~glaneur.statements.firm`: firms, their client IBANs, mandates, connectors and statement sources;
- :mod:`~glaneur.statements.routing`: intake of a file and routing of each statement per IBAN;
- :mod:`~glaneur.statements.delivery`: signed delivery to the partner tools;
- :mod:`~glaneur.statements.doctor`: ``glaneur doctor --iban``, the checks of a client IBAN.
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
