"""The README's command blocks, checked without running them (they run in tests/e2e/test_readme.py)."""

from __future__ import annotations

import re

from tests.readme_blocks import readme_blocks


def test_the_marker_convention_is_read():
    text = "x\n<!-- readme-test: skip: a server -->\n\n```sh\nmake a\n```\n```sh\nmake b\n```\n```python\nno\n```\n"
    assert [(b.code, b.skip) for b in readme_blocks(text)] == [("make a", "a server"), ("make b", None)]


def test_the_readme_blocks_use_the_projects_command_and_few_are_skipped():
    blocks = readme_blocks()
    assert len(blocks) >= 6
    skipped = [block for block in blocks if block.skip]
    assert len(skipped) <= 4, [(block.line, block.skip) for block in skipped]
    for block in blocks:
        for line in block.code.splitlines():
            # `glaneur` is not on PATH after `make`: every command names the venv's.
            assert not re.search(r"(^|[|;&]\s*)glaneur\b", line.strip()), (block.line, line)
            assert not re.search(r"(^|[|;&]\s*)(prefect|playwright)\b", line.strip()), (block.line, line)
