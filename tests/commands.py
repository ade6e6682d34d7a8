"""The ``glaneur`` command as a person types it, run in this process through Typer's ``CliRunner``.

Secrets go in through ``input=``, never argv. A wide terminal (250 columns), so that tables do not
truncate what the tests look for. A module that imports :func:`first_collections` (an autouse
fixture) records the first collections the commands start instead of running them.
"""

from __future__ import annotations

import sys
import types

import pytest
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


@pytest.fixture(autouse=True)
def first_collections(monkeypatch):
    """Stands in for flows.activation: which first collections the CLI started (channel slugs), never run here."""
    module = types.ModuleType("flows.activation")
    calls: list[str] = []

    def start_first_collection(slug: str, *, what: str = "First collection") -> str:
        calls.append(slug)
        return f"{what} of {slug} ran in this process (test double)."

    module.start_first_collection = start_first_collection
    monkeypatch.setitem(sys.modules, "flows.activation", module)
    return calls
