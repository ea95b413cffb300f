"""Tests the teacher writes for a prompt that has none, kept only where they can tell code apart.

The teacher is asked for one assert per line in one fenced block (teachers/prompts.py); this
module reads them and checks them in the sandbox, as the student will be checked:

- a case is kept only if the teacher's own reference passes it;
- the kept set is used only if an empty answer and a stub of the reference (its functions with
  their bodies gutted) both fail it, so tests that call nothing, or accept anything, are dropped.

What is left is a task's `tests`: from then on the student is scored by execution, with the same
walls and outside verdicts as a task that came with tests. A prompt left with none says why.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from .extract import extract_code
from .programs import LANGUAGES, run_tests
from .static import blank_comments_and_strings, function_bodies, parse_python

MAX_CASES = 12
MAX_CASE_CHARS = 1000
# Where a C++/Rust test statement starts: an assert at the start of a line.
_ASSERT_START = {
    "cpp": re.compile(r"^[ \t]*assert[ \t]*\(", re.M),
    "rust": re.compile(r"^[ \t]*(?:assert|assert_eq|assert_ne)![ \t]*\(", re.M),
}
_STUB_BODY = {"cpp": "{ throw 0; }", "rust": "{ unimplemented!() }"}


@dataclass(frozen=True)
class WrittenTests:
    """The kept cases, or none and `reason` saying why."""

    cases: list[str]
    reason: str | None = None


def parse_tests(answer: str, language: str) -> list[str]:
    """The assert statements of the teacher's answer, in order, at most MAX_CASES."""
    code = extract_code(answer, language)
    if language == "python":
        cases = _python_asserts(code)
    elif language in _ASSERT_START:
        cases = _brace_asserts(code, language)
    else:
        cases = []
    return [case for case in cases if len(case) <= MAX_CASE_CHARS][:MAX_CASES]


def _python_asserts(code: str) -> list[str]:
    try:
        tree = parse_python(code)
    except (SyntaxError, ValueError, RecursionError):
        return []
    return [ast.get_source_segment(code, node) or "" for node in tree.body if isinstance(node, ast.Assert)]


def _brace_asserts(code: str, language: str) -> list[str]:
    """Each assert from its start to the `;` that closes it (brackets balanced, outside strings)."""
    bare = blank_comments_and_strings(code)
    cases = []
    for match in _ASSERT_START[language].finditer(bare):
        depth, start = 0, match.start() + len(match.group()) - len(match.group().lstrip())
        for index in range(match.end() - 1, len(bare)):
            depth += {"(": 1, ")": -1}.get(bare[index], 0)
            if depth == 0:
                end = bare.find(";", index)
                if end >= 0 and not bare[index + 1 : end].strip():
                    cases.append(code[start : end + 1])
                break
    return cases


def stub_of(code: str, language: str) -> str:
    """The code with every function's body gutted: the names exist, nothing is computed."""
    if language == "python":
        try:
            tree = parse_python(code)
        except (SyntaxError, ValueError, RecursionError):
            return ""
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                node.body = [ast.Pass()]
        return ast.unparse(tree)
    pieces, position = [], 0
    for opening, closing in function_bodies(code, language):
        pieces += [code[position:opening], _STUB_BODY[language]]
        position = closing + 1
    return "".join(pieces) + code[position:]


def check_tests(scorer, language: str, cases: list[str], reference: str, entry_point: str | None) -> WrittenTests:
    """The cases the reference passes, if an empty answer and a stub fail them (see the module docstring)."""
    if not cases:
        return WrittenTests([], "the teacher wrote no tests in the asked form")
    if language not in LANGUAGES:
        return WrittenTests([], f"no test runner for {language}")

    def run(code: str, chosen: list[str]):
        return run_tests(
            scorer.sandbox, scorer.tools, language, code, chosen, entry_point, scorer.limits, scorer.compile_limits
        )

    whole = run(reference, cases)
    if whole.missing is not None:
        return WrittenTests([], whole.reason or "no toolchain")
    kept = cases if whole.all_passed else [case for case in cases if run(reference, [case]).all_passed]
    if not kept:
        return WrittenTests([], "the teacher's own solution fails every test it wrote")
    for name, code in (("an empty answer", ""), ("a stub of the solution", stub_of(reference, language))):
        if run(code, kept).all_passed:
            return WrittenTests([], f"{name} passes the tests the teacher wrote: they test nothing")
    return WrittenTests(kept)
