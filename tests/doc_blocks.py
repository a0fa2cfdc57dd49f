"""The fenced code blocks of a markdown page, for the tests that run a page's examples."""
from __future__ import annotations

from typing import Iterator


def fenced_blocks(markdown: str) -> Iterator[tuple[str, str]]:
    """(language, code) of the fenced blocks, in order."""
    lang, lines = None, []
    for line in markdown.splitlines():
        if line.startswith("```"):
            if lang is None:
                lang, lines = line[3:].strip(), []
            else:
                yield lang, "\n".join(lines)
                lang = None
        elif lang is not None:
            lines.append(line)
