"""Directives that silence a compiler without changing the program, taken out before it compiles.

`#line` and GNU line markers move a C++ program's warnings to other file names or lines,
`#pragma GCC diagnostic` / `system_header` and `_Pragma(...)` turn them off, and Rust's
`#![allow(...)]` / `#[allow(...)]` (or `expect`) turn off lints. None changes what the program
does, so rfai blanks them (newlines kept, so every warning keeps its line) and compiles the
program as it will run: the warnings they hid are counted, and each directive counts as one
more (quality is scored on the code, not on what it asked the compiler not to say).
"""

from __future__ import annotations

import re

from .static import blank_comments_and_strings

_CPP = re.compile(
    r"^[ \t]*(?:#|%:)[ \t]*(?:line\b|\d|pragma[ \t]+(?:GCC|clang)[ \t]+(?:diagnostic|system_header)\b)[^\n]*"
    r"|\b_Pragma[ \t]*\([^()\n]*\)",
    re.M,
)
_RUST = re.compile(r"#!?\[[ \t]*(?:allow|expect)[ \t]*\(([^()\]]*)\)[ \t]*\]")
_HARMLESS_LINTS = re.compile(r"^\s*(?:dead_code|clippy::[\w:]+)\s*$")  # rfai already allows dead code


def unsilenced(code: str, language: str) -> tuple[str, int]:
    """(`code` with its silencing directives blanked, how many there were)."""
    bare = blank_comments_and_strings(code.replace("\\\n", "  ") if language == "cpp" else code)
    if language == "cpp":
        spans = [match.span() for match in _CPP.finditer(bare)]
    else:
        spans = [
            match.span()
            for match in _RUST.finditer(bare)
            if not all(_HARMLESS_LINTS.match(lint) for lint in match.group(1).split(","))
        ]
    if not spans:
        return code, 0
    out = list(code)
    for start, end in spans:
        for index in range(start, end):
            if out[index] != "\n":
                out[index] = " "
    return "".join(out), len(spans)
