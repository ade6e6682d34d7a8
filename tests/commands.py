"""The ``glaneur`` command as a person types it, run in this process through Typer's ``CliRunner``.

Secrets go in through ``input=``, never argv. A wide terminal (250 columns), so that tables do not
truncate what the tests look for.
"""

from __future__ import annotations

from typer.testing import CliRunner, Result

from cli.main import app

runner = CliRunner()


def glaneur(*args: str, input: str | None = None) -> Result:
    return runner.invoke(app, list(args), input=input, env={"COLUMNS": "250"})


def ok(*args: str, input: str | None = None) -> Result:
    """The command, which must succeed (exit 0); its output and exception otherwise."""
    result = glaneur(*args, input=input)
    assert result.exit_code == 0, (result.output, result.exception)
    return result
