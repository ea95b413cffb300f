"""The teacher's prompts (reference solution, unit tests, rubric judgement) and the judgement parser."""

from __future__ import annotations

import json
import math
import re

from ..scoring.rubric import CRITERIA
from .base import Chat

# What the judge is asked of each rubric criterion; the criteria themselves are the rubric's.
_QUESTIONS = {
    "correctness": "does the code solve the task as stated, including edge cases, and would it run without errors?",
    "code_quality": "is it readable, idiomatic for the language, well structured, with clear names?",
    "efficiency": "are the algorithms and data structures appropriate (time and memory)?",
    "documentation": "do docstrings and comments explain what the code does and why, where it helps?",
}
_RUBRIC = "\n".join(f"- {name}: {_QUESTIONS[name]}" for name in CRITERIA)

_JSON_SHAPE = "{" + ", ".join(f'"{name}": x' for name in CRITERIA) + "}"


def reference_chat(prompt: str, language: str) -> Chat:
    return [
        {
            "role": "system",
            "content": "You are an expert programmer writing reference solutions for a code-model training set.",
        },
        {
            "role": "user",
            "content": (
                f"{prompt.strip()}\n\n"
                f"Write a complete, correct and well-documented solution in {language}. "
                f"Answer with the whole solution in a single fenced code block (```{language} ... ```)."
            ),
        },
    ]


# One assert per test, in forms rfai decides outside the box (docs/sandbox.md, "Verdicts from outside").
TEST_FORMS = {
    "python": "assert function_name(arguments) == expected_value",
    "cpp": "assert(function_name(arguments) == expected_value);",
    "rust": "assert_eq!(function_name(arguments), expected_value);",
}
WRITTEN_TESTS = 8  # how many tests the teacher is asked for


def tests_chat(prompt: str, language: str, reference: str) -> Chat:
    """Ask for unit tests of a task that has none, checked later against `reference` (the teacher's own solution)."""
    form = TEST_FORMS.get(language, TEST_FORMS["python"])
    return [
        {"role": "system", "content": "You are an expert programmer writing unit tests for a code-model training set."},
        {
            "role": "user",
            "content": (
                f"Task:\n{prompt.strip()}\n\n"
                f"A correct solution ({language}):\n```{language}\n{reference.rstrip()}\n```\n\n"
                f"Write {WRITTEN_TESTS} unit tests of this task that any correct solution passes and a wrong one fails: "
                "typical inputs and edge cases, calling the functions the solution defines, with literal expected "
                f"values. Each test is one line of the form `{form}`. Answer with the tests only, one per line, "
                f"in a single fenced code block (```{language} ... ```): no solution code, no main function, "
                "no imports."
            ),
        },
    ]


def judge_chat(prompt: str, code: str, language: str) -> Chat:
    return [
        {
            "role": "system",
            "content": "You are a strict, fair code reviewer. You answer with JSON only.",
        },
        {
            "role": "user",
            "content": (
                f"Task:\n{prompt.strip()}\n\n"
                f"Candidate solution ({language}):\n```{language}\n{code.rstrip()}\n```\n\n"
                f"Rate the solution on each criterion from 0.0 (worst) to 1.0 (best):\n{_RUBRIC}\n\n"
                f"Answer with exactly one JSON object and nothing else, where each x is a number between 0 and 1:\n"
                f"{_JSON_SHAPE}"
            ),
        },
    ]


def repair_chat(chat: Chat, answer: str, problem: str) -> Chat:
    """The judge chat once more, told what was wrong with its last answer."""
    return [
        *chat,
        {"role": "assistant", "content": answer},
        {
            "role": "user",
            "content": f"That answer could not be used ({problem}). Reply with only this JSON object: {_JSON_SHAPE}",
        },
    ]


class VerdictError(ValueError):
    """A judge answer that is not the JSON object asked for."""


_FENCE = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n(.*?)```", re.DOTALL)


def parse_verdict(text: str) -> dict[str, float]:
    """The four criterion scores from a judge answer: a JSON object, bare or in a code fence.

    Every criterion must be present as a number in [0, 1]; other keys (a judge's "reasoning")
    are ignored. Raises VerdictError naming the first problem.
    """
    candidates = [block for block in _FENCE.findall(text)] + [text]
    obj = None
    for candidate in candidates:
        obj = _first_object(candidate)
        if obj is not None:
            break
    if obj is None:
        raise VerdictError("no JSON object found")
    scores = {}
    for name in CRITERIA:
        if name not in obj:
            raise VerdictError(f"missing key '{name}'")
        value = obj[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise VerdictError(f"'{name}' is not a number: {value!r}")
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise VerdictError(f"'{name}' is outside 0..1: {value!r}")
        scores[name] = float(value)
    return scores


def _first_object(text: str) -> dict | None:
    """The first JSON object that decodes, scanning from each '{' in turn."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None
