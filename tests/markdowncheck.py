"""A GitHub-flavoured Markdown table reader for tests (stdlib only)."""

from __future__ import annotations

import re


def gfm_table(text: str) -> list[list[str]]:
    """The first GFM table in ``text``: its header and body rows, cells split on unescaped
    pipes. Fails unless a header row is followed by a ``|---|`` separator row and every
    row has the header's number of columns."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| "))
    block = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        block.append(line)
    rows = [[c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]] for line in block]
    header, separator, body = rows[0], rows[1], rows[2:]
    assert len(separator) == len(header), (header, separator)
    assert all(re.fullmatch(r":?-{3,}:?", cell) for cell in separator), separator
    assert body and all(len(row) == len(header) for row in body), body
    return [header, *body]
