"""Every built-in and starter task (and every HumanEval problem) is solvable and its tests tell right from wrong.

Each reference solution runs against its own cases with plain subprocesses (python3, g++ -std=c++17,
rustc --edition 2021 --test), one process per task, with programs built the way the `prompts` module
docstring describes (the same shape as rfai_cli.scoring.programs): every case must pass, and an empty
or stub answer must fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rfai_cli.data.prompts import PromptTask, load_prompts

BUILTIN = load_prompts("builtin") + load_prompts("starter")
TIMEOUT = 120

_PYTHON = """\
CODE, CASES, ENTRY = {code!r}, {cases!r}, {entry!r}
namespace = {{"__name__": "solution"}}
exec(compile(CODE, "solution.py", "exec"), namespace)
for index, case in enumerate(CASES):
    before = namespace.get("check")
    try:
        exec(compile(case, "case_%d.py" % index, "exec"), namespace)
        check = namespace.get("check")
        if callable(check) and check is not before:
            check(namespace[ENTRY])
    except Exception as exc:
        print("case %d fail %s: %s" % (index, type(exc).__name__, exc))
    else:
        print("case %d ok" % index)
"""

_CPP = """
#include <cstdio>
#include <stdexcept>
#include <string>
#undef assert
#define assert(...) do {{ if (!(__VA_ARGS__)) throw std::runtime_error("assert(" #__VA_ARGS__ ")"); }} while (0)
{functions}
int main() {{
    void (*cases[])() = {{{names}}};
    for (int i = 0; i < {total}; ++i) {{
        try {{ cases[i](); std::printf("case %d ok\\n", i); }}
        catch (const std::exception& e) {{ std::printf("case %d fail %s\\n", i, e.what()); }}
    }}
}}
"""


def run_cases(task: PromptTask, code: str, workdir: Path) -> list[bool]:
    """Per case: did it pass? A program that does not build passes nothing."""
    if task.language == "python":
        program = _PYTHON.format(code=code, cases=task.tests, entry=task.entry_point)
        out = subprocess.run(
            [sys.executable, "-c", program],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
        )
        return _verdicts(out.stdout, r"^case (\d+) (ok|fail)", len(task.tests))
    if task.language == "cpp":
        functions = "\n".join(f"static void case_{i}() {{\n{case}\n}}" for i, case in enumerate(task.tests))
        names = ", ".join(f"case_{i}" for i in range(len(task.tests)))
        source, build = workdir / "main.cpp", ["g++", "-std=c++17", "-O1", "-o", "prog", "main.cpp"]
        source.write_text(code + _CPP.format(functions=functions, names=names, total=len(task.tests)))
        run, pattern = ["./prog"], r"^case (\d+) (ok|fail)"
    else:
        tests = "\n".join(f"#[test]\nfn case_{i}() {{\n{case}\n}}" for i, case in enumerate(task.tests))
        source = workdir / "main.rs"
        build = ["rustc", "--edition", "2021", "--test", "-A", "warnings", "-o", "prog", "main.rs"]
        source.write_text(f"{code}\n{tests}\n")
        run, pattern = ["./prog", "--test-threads=1"], r"^test case_(\d+) \.\.\. (ok|FAILED)"
    if subprocess.run(build, capture_output=True, timeout=TIMEOUT, cwd=workdir).returncode != 0:
        return [False] * len(task.tests)
    out = subprocess.run(run, capture_output=True, text=True, timeout=TIMEOUT, cwd=workdir)
    return _verdicts(out.stdout, pattern, len(task.tests))


def _verdicts(stdout: str, pattern: str, total: int) -> list[bool]:
    passed = {int(index) for index, verdict in re.findall(pattern, stdout, re.M) if verdict == "ok"}
    return [index in passed for index in range(total)]


def _tasks(language: str) -> list:
    marks = [] if language == "python" else [pytest.mark.slow]
    compiler = {"python": sys.executable, "cpp": "g++", "rust": "rustc"}[language]
    if not shutil.which(compiler):
        marks.append(pytest.mark.skip(reason=f"{compiler} is not installed"))
    return [pytest.param(task, id=task.task_id, marks=marks) for task in BUILTIN if task.language == language]


ALL_TASKS = _tasks("python") + _tasks("cpp") + _tasks("rust")


@pytest.mark.parametrize("task", ALL_TASKS)
def test_reference_solution_passes_every_case(task: PromptTask, tmp_path: Path):
    results = run_cases(task, task.canonical_solution, tmp_path)
    failed = [task.tests[i] for i, ok in enumerate(results) if not ok]
    assert not failed, f"{task.task_id}: reference solution fails {failed}"


@pytest.mark.parametrize("task", ALL_TASKS)
def test_empty_answer_fails_every_case(task: PromptTask, tmp_path: Path):
    assert not any(run_cases(task, "", tmp_path))


@pytest.mark.parametrize("task", _tasks("python"))
def test_stub_answer_fails_some_case(task: PromptTask, tmp_path: Path):
    """A function (or class) of the right name that returns nothing useful must not pass everything."""
    stub = f"def {task.entry_point}(*args, **kwargs):\n    return None\n"
    assert not all(run_cases(task, stub, tmp_path))


@pytest.mark.slow
def test_humaneval_reference_solutions_pass(tmp_path: Path):
    """The HumanEval cases (split out of `check` or whole) accept the published solutions."""
    failures = []
    for task in load_prompts("humaneval"):
        results = run_cases(task, task.canonical_solution, tmp_path)
        if not all(results):
            failures.append(task.task_id)
    assert failures == []


@pytest.mark.slow
def test_humaneval_cases_reject_a_stub(tmp_path: Path):
    failures = []
    for task in load_prompts("humaneval"):
        stub = f"def {task.entry_point}(*args, **kwargs):\n    return None\n"
        if all(run_cases(task, stub, tmp_path)):
            failures.append(task.task_id)
    assert failures == []
