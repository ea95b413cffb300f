"""Take the code out of a model's answer: the one place that decides what "the code" is.

The fenced block for the row's language, else the first fenced block, else the whole text.
A block left open at the end of the answer (generation stopped mid-block) runs to the end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..records import normalize_language

_OPEN = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\s`]*)")


@dataclass(frozen=True)
class Block:
    language: str | None
    code: str
    closed: bool = True  # False: the text ended inside the block


def fenced_blocks(text: str) -> list[Block]:
    """Every fenced code block in `text`, in order, with its normalised info-string language."""
    blocks: list[Block] = []
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        opening = _OPEN.match(lines[i])
        if not opening:
            i += 1
            continue
        fence = opening["fence"]
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body: list[str] = []
        i += 1
        while i < len(lines) and not closing.match(lines[i].rstrip("\r\n")):
            body.append(lines[i])
            i += 1
        closed = i < len(lines)
        i += 1  # past the closing fence (or the end)
        blocks.append(Block(normalize_language(opening["info"]) or None, "".join(body), closed))
    return blocks


def extract_code(text: str, language: str | None) -> str:
    """The code to score from a model's answer (see the module docstring for the order)."""
    blocks = fenced_blocks(text)
    wanted = normalize_language(language)
    for block in blocks:
        if wanted and block.language == wanted:
            return block.code
    return blocks[0].code if blocks else text
