"""Split each C++/Rust test case into what runs inside the box and what is decided outside it.

(Python needs no splitting: its judge process runs each case whole, see `_pyharness.py`.)

An assert of the common shapes (`CALL == EXPECTED`, `!=`, `<`, `abs(CALL - EXPECTED) < TOL`, a
bare `CALL` or `!CALL`, and `&&`-chains of those, with any redundant brackets around them) whose
expected side is a literal becomes an observation: the box reports the value of `CALL`, and a
`Check` holding `EXPECTED` decides here. The expected literal is removed from the code that
enters the box. Anything else (a computed expected value, an assert in a loop, a C++ test with
its own `main`) still runs, as an in-box verdict, and the case is marked `inside`: weaker, since
the program could forge it, and scored as such (`rubric.INSIDE_SHARE`).

A bare condition (`CALL`, `!CALL`) is split only when it is a *primary* (a call, name, member
or index) with no comparison or logical operator anywhere in it, even in brackets (`all_of(...,
[](int x) { return f(x) == x; })` compares with the program's own `operator==`), so the program
cannot make its own comparison true; a compared expression may be anything, since the value it
must equal is not in the box.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .literals import NotLiteral, cpp_literal, rust_literal
from .static import blank_comments_and_strings
from .values import Check


@dataclass(frozen=True)
class SplitCase:
    """`source`: the case as it runs in the box; `checks[k]` judges observation k."""

    source: str
    checks: list[Check] = field(default_factory=list)
    inside: bool = False  # some of the verdict is decided inside the box


# --- brace languages: shared scanning -----------------------------------------------------------

_OPEN, _CLOSE = "([{", ")]}"


def _depths(bare: str, angles: bool = False) -> list[int]:
    """Bracket depth before each character of `bare` (comments and strings already blanked).
    With `angles`, Rust turbofish `::<...>` counts as brackets too."""
    depths, depth, angle = [], 0, 0
    for index, char in enumerate(bare):
        depths.append(depth + angle)
        if char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            depth = max(0, depth - 1)
        elif angles and char == "<" and (angle or bare[max(0, index - 2) : index] == "::"):
            angle += 1
        elif angles and char == ">" and angle and bare[index - 1 : index] != "-":
            angle -= 1
    depths.append(depth + angle)
    return depths


def _split_top(text: str, bare: str, separator: str, angles: bool = False) -> list[tuple[str, str]]:
    """`text` cut at each `separator` outside brackets: [(original piece, blanked piece)]."""
    depths = _depths(bare, angles)
    pieces, start, index = [], 0, 0
    while True:
        index = bare.find(separator, index)
        if index < 0:
            break
        if depths[index] == 0:
            pieces.append((text[start:index], bare[start:index]))
            start = index + len(separator)
        index += len(separator)
    pieces.append((text[start:], bare[start:]))
    return pieces


# An operator the program may define, or a block that can hold one, anywhere in a condition.
_DECIDES = re.compile(r"==|!=|<=|>=|&&|\|\||(?<!\w)!(?!=)|\breturn\b|\|[^|]*\|")


def _is_primary(bare: str) -> bool:
    """No operator outside brackets (`::`, `.` and `->` are member access, not operators), no
    comparison or logical operator inside them, and not a bracketed expression."""
    depths = _depths(bare)
    cleaned = bare.replace("::", "  ").replace("->", "  ")
    return (
        bool(bare.strip())
        and not bare.strip().startswith("(")
        and not _DECIDES.search(bare)
        and not any(char in "+-*/%<>=&|^?,!~" and depths[i] == 0 for i, char in enumerate(cleaned))
    )


def _unwrapped(text: str, bare: str) -> tuple[str, str]:
    """`text` without brackets around the whole of it: `((f() == 3))` -> `f() == 3`."""
    while True:
        stripped = bare.strip()
        if not stripped.startswith("(") or _matching(stripped, 0) != len(stripped) - 1:
            return text, bare
        start = bare.index("(")
        end = bare.rindex(")")
        text, bare = text[start + 1 : end], bare[start + 1 : end]


def _is_operand(bare: str) -> bool:
    """Nothing outside brackets that binds looser than `==` (or could be a template bracket), so
    the text before or after a top-level `==` really is that comparison's operand."""
    depths = _depths(bare)
    cleaned = bare.replace("::", "  ").replace("->", "  ")
    return bool(bare.strip()) and not any(char in "<>?:=&|^" and depths[i] == 0 for i, char in enumerate(cleaned))


def _comparison(text: str, bare: str, literal) -> tuple[str, Check] | None:
    """Split one condition of a brace language: (expression to observe, check) or None."""
    text, bare = _unwrapped(text, bare)
    stripped = bare.strip()
    for operator, kind in (("==", "eq"), ("!=", "ne")):
        parts = _split_top(text, bare, operator)
        if len(parts) == 2:
            (left, left_bare), (right, right_bare) = parts
            for observed, observed_bare, other in ((left, left_bare, right), (right, right_bare, left)):
                try:
                    expected = literal(other.strip())
                except (NotLiteral, ValueError, RecursionError):
                    continue
                if _is_operand(observed_bare):
                    return observed.strip(), Check(kind, expected)
            return None
        if len(parts) > 2:
            return None
    if stripped.startswith("!") and _is_primary(stripped[1:]):
        offset = bare.index("!") + 1
        return text[offset:].strip(), Check("falsy")
    if _is_primary(bare):
        return text.strip(), Check("truthy")
    return None


# --- C++ ----------------------------------------------------------------------------------------

_CPP_ASSERT = re.compile(r"(?<![\w:.>])assert\s*\(")
_CPP_TOLERANCE = re.compile(r"^\s*(?:std::)?f?abs\s*\(")


def _cpp_tolerance(text: str, bare: str) -> tuple[str, Check] | None:
    """`std::abs(X - L) < T`: observe X."""
    head = _CPP_TOLERANCE.match(bare)
    if not head:
        return None
    opening = head.end() - 1
    depths = _depths(bare)
    closing = next((i for i in range(opening + 1, len(bare)) if bare[i] == ")" and depths[i] == 1), None)
    if closing is None:
        return None
    rest = bare[closing + 1 :].strip()
    match = re.fullmatch(r"(<=?)\s*(.+)", rest)
    if not match:
        return None
    try:
        tolerance = cpp_literal(text[closing + 1 :].strip()[len(match.group(1)) :].strip())
    except (NotLiteral, ValueError):
        return None
    parts = _split_top(text[opening + 1 : closing], bare[opening + 1 : closing], "-")
    return _distance_check(parts, tolerance, cpp_literal, match.group(1) == "<")


def _distance_check(parts: list[tuple[str, str]], tolerance, literal, strict: bool) -> tuple[str, Check] | None:
    """`X - L` (or `L - X`) within `tolerance`: observe X, check its distance to L outside."""
    if len(parts) != 2 or not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool):
        return None
    for (observed, observed_bare), (other, _) in (parts, parts[::-1]):
        try:
            target = literal(other.strip())
        except (NotLiteral, ValueError):
            continue
        if isinstance(target, (int, float)) and _is_primary(observed_bare):
            return observed.strip(), Check("close", target, float(tolerance), strict)
    return None


def _rewrite_asserts(case: str, pattern: re.Pattern, split, observe_call, inside_call) -> SplitCase:
    """Shared by C++ and Rust: replace each top-level assert statement of `case` by observations
    (`split(arguments, blanked, macro)` gives, per condition, (expression, check) or (None,
    condition); None for a statement kept whole) written by `observe_call(k, expression)`, and
    the rest by in-box checks written by `inside_call(condition, macro)`."""
    bare = blank_comments_and_strings(case)
    depths = _depths(bare)
    out, checks, inside, position = [], [], False, 0
    for match in pattern.finditer(bare):
        start, opening = match.start(), match.end() - 1
        before = bare[:start].rstrip()
        closing = _matching(bare, opening)
        if closing is None or depths[start] != 0 or (before and before[-1] not in ";{}"):
            continue
        after = bare[closing + 1 :].lstrip()
        if not after.startswith(";"):
            continue
        end = len(bare) - len(after) + 1
        pieces = split(case[opening + 1 : closing], bare[opening + 1 : closing], match.group())
        out.append(case[position:start])
        if pieces is None:
            out.append(inside_call(case[opening + 1 : closing], match.group()))
            inside = True
        else:
            for observed, check in pieces:
                if observed is None:  # `check` is the condition's text
                    out.append(inside_call(check, match.group()))
                    inside = True
                    continue
                out.append(observe_call(len(checks), observed))
                checks.append(check)
        position = end
    out.append(case[position:])
    source = "".join(out)
    nested = pattern.search(blank_comments_and_strings(source))
    return SplitCase(source, checks, inside or nested is not None or not checks)


def _matching(bare: str, opening: int) -> int | None:
    depth = 0
    for index in range(opening, len(bare)):
        if bare[index] in _OPEN:
            depth += 1
        elif bare[index] in _CLOSE:
            depth -= 1
            if depth == 0:
                return index
    return None


def _cpp_conditions(text: str, bare: str, _macro: str) -> list[tuple[str | None, Check | str]]:
    text, bare = _unwrapped(text, bare)
    out = []
    for piece, piece_bare in _split_top(text, bare, "&&"):
        split = _cpp_tolerance(piece, piece_bare) or _comparison(piece, piece_bare, cpp_literal)
        out.append((split[0], split[1].labelled(" ".join(piece.split()))) if split else (None, piece))
    return out


def split_cpp(case: str) -> SplitCase:
    """The case as a C++ function body (parameters `rfai_out`, `rfai_case`): observations through
    `rfai::observe`, in-box asserts through `rfai::check` (a function, not a macro)."""
    split = _rewrite_asserts(
        case,
        _CPP_ASSERT,
        _cpp_conditions,
        lambda k, expression: f"rfai::observe(rfai_out, rfai_case, {k}, ({expression}));",
        lambda condition, _macro: f"rfai::check(static_cast<bool>({condition}));",
    )
    source = _CPP_ASSERT.sub("rfai::check(", split.source)  # asserts left inside loops and lambdas
    return SplitCase(source, split.checks, split.inside)


# --- Rust ---------------------------------------------------------------------------------------

_RUST_ASSERT = re.compile(r"(?<![\w:])(?:debug_)?assert(?:_eq|_ne)?!\s*\(")


def _rust_conditions(text: str, bare: str, macro: str) -> list[tuple[str | None, Check | str]] | None:
    kind = "eq" if "_eq" in macro else "ne" if "_ne" in macro else None
    if kind is None:
        first = _split_top(text, bare, ",", angles=True)[0]  # a message after the condition is dropped
        out = []
        for piece, piece_bare in _split_top(*_unwrapped(*first), "&&", angles=True):
            split = _rust_tolerance(piece, piece_bare) or _comparison(piece, piece_bare, rust_literal)
            out.append((split[0], split[1].labelled(" ".join(piece.split()))) if split else (None, piece))
        return out
    arguments = _split_top(text, bare, ",", angles=True)
    if len(arguments) < 2:
        return None
    (left, _), (right, _) = arguments[:2]
    for observed, other in ((left, right), (right, left)):
        try:
            expected = rust_literal(other.strip())
        except (NotLiteral, ValueError, RecursionError):
            continue
        label = f"{macro.split('!')[0].strip()}!({' '.join(text.split())})"
        return [(observed.strip(), Check(kind, expected).labelled(label))]  # a macro argument is a whole expression
    return None


def _rust_tolerance(text: str, bare: str) -> tuple[str, Check] | None:
    """`(X - L).abs() < T`: observe X."""
    match = re.fullmatch(r"\s*\((?P<inner>.*)\)\.abs\(\)\s*(?P<op><=?)\s*(?P<tol>\S.*)", bare, re.S)
    if not match or _matching(bare, bare.index("(")) != match.end("inner"):
        return None
    try:
        tolerance = rust_literal(text[match.start("tol") :].strip())
    except (NotLiteral, ValueError):
        return None
    parts = _split_top(text[match.start("inner") : match.end("inner")], match.group("inner"), "-", angles=True)
    return _distance_check(parts, tolerance, rust_literal, match.group("op") == "<")


def _rust_inside(condition: str, macro: str) -> str:
    # By path, so a `macro_rules! assert` of the program's cannot change what runs.
    return f"::core::{macro.split('!')[0].strip()}!({condition});"


def split_rust(case: str) -> SplitCase:
    split = _rewrite_asserts(
        case,
        _RUST_ASSERT,
        _rust_conditions,
        lambda k, expression: f"(&crate::rfai::Probe(&({expression}))).rfai_encode(rfai_out, rfai_case, {k});",
        _rust_inside,
    )
    source = re.sub(r"(?<![\w:])((?:debug_)?assert(?:_eq|_ne)?!)", r"::core::\1", split.source)
    return SplitCase(source, split.checks, split.inside)
