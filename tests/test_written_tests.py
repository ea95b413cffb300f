"""Tests the teacher writes for prompts that have none (scoring/written_tests.py): read from its
answer, checked in the real sandbox against its own solution, an empty answer and a stub, and then
used to score the student by execution, through `rfai collect` against a teacher over real HTTP."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from support.chat_server import ChatServer
from test_collect import config_file, rows_of

from rfai_cli.scoring import ScoreItem, Scorer
from rfai_cli.scoring.tested_names import in_student_names
from rfai_cli.scoring.written_tests import check_tests, parse_tests, stub_of

needs_rustc = pytest.mark.skipif(shutil.which("rustc") is None, reason="rustc not installed")

SOLUTIONS = {
    "python": "def double(n):\n    return n * 2\n",
    "cpp": "int twice(int n) { return n * 2; }\n",
    "rust": "pub fn twice(n: i32) -> i32 {\n    n * 2\n}\n",
}
# The last test of each is wrong: the teacher's own solution fails it, so it must be dropped.
TESTS = {
    "python": "assert double(2) == 4\nassert double(0) == 0\nassert double(3) == 7\n",
    "cpp": "assert(twice(2) == 4);\nassert(twice(5) == 10);\nassert(twice(1) == 3);\n",
    "rust": "assert_eq!(twice(2), 4);\nassert_eq!(twice(5), 10);\nassert_eq!(twice(1), 3);\n",
}


@pytest.fixture(scope="module")
def scorer():
    with Scorer() as scorer:
        yield scorer


def test_the_teachers_asserts_are_read_one_statement_each():
    answer = "Here are the tests:\n```python\nimport math\nassert f(1) == 2\nassert f(\n    2) == 3\nprint(1)\n```"
    assert parse_tests(answer, "python") == ["assert f(1) == 2", "assert f(\n    2) == 3"]
    cpp = '```cpp\nassert(f(1) == 2);\n  assert(g(")(") == 3 && h(2));\n// assert(commented);\nint main() {}\n```'
    assert parse_tests(cpp, "cpp") == ["assert(f(1) == 2);", 'assert(g(")(") == 3 && h(2));']
    rust = "```rust\nassert_eq!(f(1), 2);\nassert!(g(vec![1, 2]) == Some(3));\n```"
    assert parse_tests(rust, "rust") == ["assert_eq!(f(1), 2);", "assert!(g(vec![1, 2]) == Some(3));"]
    assert parse_tests("I would test it with a few inputs.", "python") == []


def test_a_stub_keeps_the_names_and_computes_nothing():
    assert stub_of(SOLUTIONS["python"], "python") == "def double(n):\n    pass"
    assert stub_of(SOLUTIONS["cpp"], "cpp") == "int twice(int n) { throw 0; }\n"
    assert stub_of(SOLUTIONS["rust"], "rust") == "pub fn twice(n: i32) -> i32 { unimplemented!() }\n"


def test_python_tests_the_solution_fails_are_dropped_and_the_rest_kept(scorer):
    checked = check_tests(scorer, "python", parse_tests(TESTS["python"], "python"), SOLUTIONS["python"], None)
    assert checked.cases == ["assert double(2) == 4", "assert double(0) == 0"] and checked.reason is None


def test_tests_that_an_empty_answer_or_a_stub_passes_are_not_used(scorer):
    nothing = check_tests(scorer, "python", ["assert 1 + 1 == 2", "assert True"], SOLUTIONS["python"], None)
    assert nothing.cases == [] and "an empty answer passes" in nothing.reason
    # double(n) with a stub returns None, which these tests accept
    lenient = check_tests(
        scorer, "python", ["assert double(2) is not 5", "assert not double(0)"], SOLUTIONS["python"], None
    )
    assert lenient.cases == [] and "a stub of the solution passes" in lenient.reason
    wrong = check_tests(scorer, "python", ["assert double(2) == 5"], SOLUTIONS["python"], None)
    assert wrong.cases == [] and "fails every test" in wrong.reason


def test_cpp_tests_are_checked_by_compiling_them_with_the_solution(scorer):
    checked = check_tests(scorer, "cpp", parse_tests(TESTS["cpp"], "cpp"), SOLUTIONS["cpp"], None)
    assert checked.cases == ["assert(twice(2) == 4);", "assert(twice(5) == 10);"], checked.reason


@needs_rustc
def test_rust_tests_are_checked_by_compiling_them_with_the_solution(scorer):
    checked = check_tests(scorer, "rust", parse_tests(TESTS["rust"], "rust"), SOLUTIONS["rust"], None)
    assert checked.cases == ["assert_eq!(twice(2), 4);", "assert_eq!(twice(5), 10);"], checked.reason


# The teacher's function, the same function correct under the student's own name (with a helper
# the tests must not be pointed at), a wrong one under that name, and the teacher's tests.
UNNAMED = {
    "python": (
        "def is_palindrome(text):\n    return text == text[::-1]\n",
        "def _clean(s):\n    return s.lower()\n\n\ndef check_palindrome(s):\n    return _clean(s) == _clean(s)[::-1]\n",
        "def check_palindrome(s):\n    return True\n",
        ['assert is_palindrome("abba")', 'assert not is_palindrome("abc")', "assert is_palindrome('')"],
    ),
    "cpp": (
        "int add_two(int a, int b) { return a + b; }\n",
        "int twice(int n) { return 2 * n; }\nint sum_of(int x, int y) { return x + y; }\n",
        "int sum_of(int x, int y) { return x * y; }\n",
        ["assert(add_two(1, 2) == 3);", "assert(add_two(-4, 4) == 0);"],
    ),
    "rust": (
        "pub fn add_two(a: i32, b: i32) -> i32 {\n    a + b\n}\n",
        "fn twice(n: i32) -> i32 {\n    2 * n\n}\n\npub fn sum_of(x: i32, y: i32) -> i32 {\n    x + twice(y) - y\n}\n",
        "pub fn sum_of(x: i32, y: i32) -> i32 {\n    x * y\n}\n",
        ["assert_eq!(add_two(1, 2), 3);", "assert_eq!(add_two(-4, 4), 0);"],
    ),
}


@pytest.mark.parametrize("language", ["python", "cpp", pytest.param("rust", marks=needs_rustc)])
def test_tests_call_the_students_function_when_the_prompt_never_named_one(scorer, language):
    """The teacher's tests call its own name; a student never told it is tested under its own."""
    reference, renamed, wrong, cases = UNNAMED[language]
    expected = "is_palindrome" if language == "python" else "add_two"
    unnamed = {"prompt": "Write a function that checks the thing.", "language": language, "tests": cases}
    result = scorer.score(ScoreItem(unnamed, [renamed, wrong, reference], reference))
    right, bad, teachers = (student.tests for student in result.students)
    assert right["passed"] == right["total"] == len(cases), right
    assert f"the tests call '{expected}'" in right["notes"][0] and "as this code's" in right["notes"][0]
    assert bad["passed"] < bad["total"]  # the mapping runs the student's code; it cannot make it right
    assert teachers["passed"] == len(cases) and not any("the tests call" in n for n in teachers.get("notes", []))
    # A prompt that names the function leaves it to the student to use that name: no mapping.
    named = {**unnamed, "prompt": f"Write `{expected}`, a function that checks the thing."}
    followed_not = scorer.score(ScoreItem(named, [renamed], reference)).students[0].tests
    assert followed_not["passed"] == 0 and not any("the tests call" in n for n in followed_not.get("notes", []))


def test_a_name_the_students_code_mentions_is_its_own_and_is_not_mapped():
    cases, reference, student = ['assert is_palindrome("abba")'], frozenset({"is_palindrome"}), frozenset({"check"})
    fresh = "def check(s):\n    return s == s[::-1]\n"
    mapped, note = in_student_names(cases, "python", "Write a checker.", reference, student, fresh)
    assert mapped == ['assert check("abba")'] and "as this code's 'check'" in note
    stubbed = "def is_palindrome(s):\n    pass\n\n\n" + fresh  # its own is_palindrome, a stub: it fails as it is
    assert in_student_names(cases, "python", "Write a checker.", reference, student, stubbed) == (cases, None)


@pytest.mark.parametrize("language", ["python", "cpp"])
def test_reading_hostile_tests_for_names_takes_time_in_proportion_to_them(language):
    """Thousands of unclosed or nested calls (a hostile dataset's tests): a reading that walks each
    call's brackets anew took 64 s on 56 kB; one pass takes milliseconds."""
    call = "is_pal(" if language == "python" else "add_two("
    reference, student = frozenset({call[:-1]}), frozenset({"check"})
    for case in [f"assert {call * 7000}", f"assert {call * 3500}1{')' * 3500}"]:
        started = time.perf_counter()
        in_student_names([case], language, "a prompt", reference, student, "int check(int x) { return x; }")
        assert time.perf_counter() - started < 2


def scripted_teacher(messages: list[dict]) -> str:
    """Answers as a capable teacher would: a solution, or its tests; prose for the haiku."""
    system, user = messages[0]["content"], messages[-1]["content"]
    language = next(name for name in ("python", "cpp", "rust") if f"```{name}" in user)
    if "haiku" in user:
        return "A heap of petals / the shortest path to the pond / no tests needed here"
    if "unit tests" in system:
        return f"```{language}\n{TESTS[language]}```"
    return f"Solution:\n```{language}\n{SOLUTIONS[language]}```"


OPEN_ENDED = [
    {"prompt": "Implement a function that doubles a number. Include a regression test.", "language": language}
    for language in ("python", "rust", "c++")
] + [{"prompt": "Write a haiku about heaps.", "language": "python"}]


@needs_rustc
def test_collect_scores_open_ended_prompts_by_the_tests_the_teacher_wrote(rfai, tmp_path, tiny_model_dir):
    with ChatServer(scripted_teacher) as server:
        config_file(tmp_path, tiny_model_dir, teacher="")
        path = tmp_path / "config.yaml"
        teacher = f"teacher:\n  provider: openai\n  model_name: scripted\n  base_url: {server.url}\n"
        path.write_text(path.read_text().replace("teacher:\n", teacher, 1))
        prompts = tmp_path / "open.jsonl"
        prompts.write_text("".join(json.dumps(row) + "\n" for row in OPEN_ENDED))
        result = rfai("collect", "--prompts", prompts, "--samples", "2")
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
        asked = [m for m in server.requests if "unit tests" in m[0]["content"]]
    assert len(asked) == 4  # once per prompt
    by_language = {}
    for row in rows_of(Path(tmp_path / "datasets" / "train.jsonl")):
        by_language.setdefault((row["language"], "haiku" in row["prompt"]), []).append(row)
    for language, expected in (("python", 2), ("cpp", 2), ("rust", 2)):
        for row in by_language[(language, False)]:
            assert len(row["tests"]) == expected and row["score_sources"]["tests"] == "teacher"
            assert row["score_sources"]["student"]["correctness"] == "tests"
            assert row["teacher_score"] > 0.5 and row["test_results"]["teacher"]["passed"] == expected
    for row in by_language[("python", True)]:
        assert row["tests"] is None
        assert row["score_sources"]["tests"] == "none: the teacher wrote no tests in the asked form"
    assert "no usable tests (the teacher wrote no tests in the asked form)" in result.stderr
    assert "prompts without tests of their own: 3 got the teacher's, 1 have none usable" in result.stdout


def test_a_teacher_without_a_model_writes_no_tests_and_the_rows_say_so(rfai, tmp_path, tiny_model_dir):
    config_file(tmp_path, tiny_model_dir)
    path = tmp_path / "config.yaml"
    path.write_text(path.read_text().replace("teacher:\n", "teacher:\n  provider: reference\n", 1))
    prompts = tmp_path / "open.jsonl"
    prompts.write_text(json.dumps(OPEN_ENDED[0]) + "\n")
    result = rfai("collect", "--prompts", prompts, "--samples", "1")
    assert result.returncode == 0, result.stderr
    (row,) = rows_of(tmp_path / "datasets" / "train.jsonl")
    assert row["score_sources"]["tests"] == "none: no teacher solution to check tests against"
    assert "no usable tests" in result.stderr
