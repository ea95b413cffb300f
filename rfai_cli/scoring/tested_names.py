"""The function the tests call, under the student's name for it, when the prompt never gave one.

Tests the teacher writes for a prompt that has none call the teacher's function by the teacher's
name (`assert is_palindrome("aba")`). A student that was never told the name may write a correct
`check_palindrome` and fail every case with a NameError: its reward would measure naming luck,
not code. So where the cases call exactly one function that the reference defines and neither
the prompt nor the student's code mentions, the cases call one of the student's functions
instead: of those the cases do not call already and that take the arguments the cases pass, the
nearest in name. A name the prompt gives is the student's to follow and is never mapped; mapping
a name can only make the student's own function run, never make a wrong answer pass.
"""

from __future__ import annotations

import ast
import difflib
import io
import keyword
import re
import tokenize

from .static import blank_comments_and_strings, function_starts

# Beyond this much test and code text nothing is mapped: tests or answers this long were not
# written for one function, and the reading below costs time in proportion to the text.
MAX_CHARS = 64_000
_BRACE_CALL = re.compile(r"(?<![\w.:>])(?P<name>[A-Za-z_]\w*)[ \t\n]*\(")


def in_student_names(
    cases: list[str], language: str, prompt: str, reference: frozenset[str], student: frozenset[str], code: str
) -> tuple[list[str], str | None]:
    """`cases` calling the student's function (of `student`, the names `code` defines) where they
    call the reference's by a name the student could not know; with a note saying so (None: the
    cases as they were). Only a function that takes as many arguments as the cases pass is a
    candidate."""
    if len(code) + sum(map(len, cases)) > MAX_CHARS:
        return cases, None
    called = set().union(*(_calls(case, language) for case in cases))
    # Unknown to the student: neither in its prompt nor anywhere in its code (a stub of it counts).
    unknown = sorted(name for name in called & reference if not _mentions(prompt, name) and not _mentions(code, name))
    if len(unknown) != 1:
        return cases, None
    old = unknown[0]
    arities = {count for case in cases for count in _argument_counts(case, old, language)}
    candidates = [
        name
        for name in sorted(student - called - reference - {"main"})
        if all(_accepts(code, name, count, language) for count in arities)
    ]
    if not candidates:
        return cases, None
    new = max(candidates, key=lambda name: difflib.SequenceMatcher(None, old.lower(), name.lower()).ratio())
    note = f"the tests call '{old}', which the prompt does not name, as this code's '{new}'"
    return [_renamed(case, old, new, language) for case in cases], note


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text) is not None


def _calls(case: str, language: str) -> set[str]:
    """Names the case calls as plain functions (not methods), outside strings and comments."""
    return {name for name, _ in _call_sites(case, language) if not keyword.iskeyword(name)}


def _call_sites(case: str, language: str) -> list[tuple[str, int]]:
    if language != "python":
        return [(m["name"], m.start("name")) for m in _BRACE_CALL.finditer(blank_comments_and_strings(case))]
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(case).readline))
    except (tokenize.TokenError, SyntaxError):
        return []
    starts = [0]
    for line in case.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    return [
        (token.string, starts[token.start[0] - 1] + token.start[1])
        for before, token, after in zip([None, *tokens], tokens, [*tokens[1:], None])
        if token.type == tokenize.NAME
        and after is not None
        and after.string == "("
        and not (before is not None and before.string == ".")
    ]


def _argument_counts(case: str, name: str, language: str) -> list[int]:
    """How many arguments each call of `name` in the case passes."""
    if language == "python":
        try:
            tree = ast.parse(case)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return []
        return [
            len(node.args) + len(node.keywords)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name
        ]
    bare = blank_comments_and_strings(case)
    items = _bracket_items(bare, "([{")
    sites = [bare.find("(", offset) for found, offset in _call_sites(case, language) if found == name]
    return [items[paren] for paren in sites if paren in items]


def _accepts(code: str, name: str, count: int, language: str) -> bool:
    """Whether the student's `name` can be called with `count` arguments (True where that is not
    known: a class, or a definition this reading does not find)."""
    if language == "python":
        try:
            tree = ast.parse(code)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return True
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
                positional = [*node.args.posonlyargs, *node.args.args]
                fewest = len(positional) - len(node.args.defaults)
                most = len(positional) + len(node.args.kwonlyargs)
                return fewest <= count and (node.args.vararg is not None or count <= most)
        return True
    bare = blank_comments_and_strings(code)
    items = _bracket_items(bare, "([{<")  # a parameter's type may hold commas in <>: map<int, int>
    definitions = [bare.find("(", offset) for found, offset in function_starts(code, language) if found == name]
    counts = [items[paren] for paren in definitions if paren in items]
    return not counts or count in counts


def _bracket_items(bare: str, brackets: str) -> dict[int, int]:
    """Offset of each closed bracket of `brackets` -> how many comma-separated items it holds (0
    for `()` or `(void)`), in one pass over the text."""
    closers = {{"(": ")", "[": "]", "{": "}", "<": ">"}[b]: b for b in brackets}
    items: dict[int, int] = {}
    stack: list[list[int]] = []  # [offset, commas, first non-blank offset inside or -1, last]
    for index, char in enumerate(bare):
        if char.isspace():
            continue
        if stack and char not in closers:  # content of the innermost open bracket
            frame = stack[-1]
            frame[2] = index if frame[2] < 0 else frame[2]
            frame[3] = index
            frame[1] += char == ","
        if char in brackets:
            stack.append([index, 0, -1, -1])
        elif char in closers and stack:
            opening, commas, first, last = stack.pop()
            empty = first < 0 or bare[first : last + 1] == "void"
            items[opening] = 0 if empty else commas + 1
    return items


def _renamed(case: str, old: str, new: str, language: str) -> str:
    """The case with its calls of `old` made calls of `new`."""
    pieces, position = [], 0
    for offset in sorted(offset for name, offset in _call_sites(case, language) if name == old):
        pieces += [case[position:offset], new]
        position = offset + len(old)
    return "".join(pieces) + case[position:]
