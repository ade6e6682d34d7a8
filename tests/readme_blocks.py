"""The ```sh blocks of README.md, as a new user copies them.

Every block runs, in order, verbatim (tests/e2e/test_readme.py). A block that must not run in a test
(it starts a long-lived process, needs Docker, or is the test suite itself) is preceded by one line

    <!-- readme-test: skip: why -->

(blank lines between the marker and the fence are allowed). Keep those few: each names its reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
SKIP = re.compile(r"^<!--\s*readme-test:\s*skip:\s*(?P<why>.+?)\s*-->$")


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    code: str
    skip: str | None  # the reason, for a block marked not to run


def readme_blocks(text: str | None = None) -> list[Block]:
    lines = (README.read_text(encoding="utf-8") if text is None else text).splitlines()
    blocks, index = [], 0
    while index < len(lines):
        if lines[index].strip() == "```sh":
            start, body = index, []
            index += 1
            while index < len(lines) and lines[index].strip() != "```":
                body.append(lines[index])
                index += 1
            before = next((lines[i].strip() for i in range(start - 1, -1, -1) if lines[i].strip()), "")
            marked = SKIP.match(before)
            blocks.append(Block(start + 1, "\n".join(body), marked.group("why") if marked else None))
        index += 1
    return blocks
