"""Recognise a teacher answer that is no reference at all: a repetition loop, or cut off mid-code.

Small models, decoding greedily, often fall into a loop that repeats a line or a phrase until
`max_tokens`. Scored as a reference, such an answer fails its tests and drags the teacher's
score (the reward's denominator) to the floor. Both checks are linear in the answer's length.
"""

from __future__ import annotations

import zlib

from ..scoring.extract import fenced_blocks

# A loop compresses far better than code: the repeated half of a looping answer deflates to a
# few percent of its size, real code (identifiers, literals, structure) to 25-50%.
MIN_CHARS = 400
LOOP_RATIO = 0.12


def degenerate_reason(text: str) -> str | None:
    """Why `text` cannot serve as a reference (one short line), or None when it can."""
    if not text.strip():
        return "empty answer"
    if len(text) >= MIN_CHARS:
        tail = text[len(text) // 2 :].encode("utf-8", "replace")
        ratio = len(zlib.compress(tail, 6)) / len(tail)
        if ratio < LOOP_RATIO:
            return f"repetition loop (its second half compresses to {ratio:.0%})"
    blocks = fenced_blocks(text)
    if blocks and not blocks[-1].closed:
        return "cut off inside its code block (max_tokens reached)"
    return None
