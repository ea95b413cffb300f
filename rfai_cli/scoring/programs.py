"""Turn (code, test cases) into sandboxed programs per language and read back passed/total.

Verdicts are decided where the program cannot reach them, on plain data. Nothing is parsed
from output the program writes itself (stdout, stderr).
- python: the box holds two processes (`_pyharness.py`). The program's loads `candidate.py` and
  answers calls with values; the judge runs each case's own code, whole, against stand-ins
  that make those calls, so every comparison is Python's own on plain data. A case that needs
  the program's object to decide is re-run by the program and marked `inside`.
- c++ and rust: each case is split by `cases.py`: the program reports the values of the
  expressions under test on its results channel (fd 3), and the checks that hold the expected
  values (which never enter the box) judge them here; asserts that cannot be split run in the
  box and make the case `inside`.
A pass decided inside earns less (`rubric.INSIDE_SHARE`). The candidate is never pasted into
harness code:
- c++: the candidate is its own translation unit (`candidate.cpp`, the value encoders included
  before it, the cases' observation code after it); the runner that calls the cases, catches
  their exceptions and reports them is another (`runner.cpp`);
- rust: the candidate is its own module (`candidate.rs`, cases in a child module); the runner
  (`main.rs`) and the encoders (`rfai.rs`) are modules it cannot reach with macros, and no
  libtest output is read.
All cases of one program run in one process; a case that fails does not stop the others. When
the process dies (timeout, crash, limits), the cases it had not finished count as failed.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

from .cases import SplitCase, split_cpp, split_rust
from .sandbox import RESULTS, Limits, RunResult, Sandbox, last_line, read_bounded
from .silencers import unsilenced
from .static import blank_comments_and_strings, parse_python
from .values import MAX_EVENTS_BYTES, judge_case, read_events

LANGUAGES = ("python", "cpp", "rust")
HARNESS = Path(__file__).with_name("harness")


@dataclass(frozen=True)
class TestOutcome:
    """What running (or compiling) one program established."""

    passed: int
    total: int
    cpu: float | None = None  # CPU seconds of the test run, when it ran to its end
    reason: str | None = None  # why not everything passed
    warnings: int | None = None  # compiler warnings located in the candidate's own code
    compiled: bool = True
    missing: str | None = None  # the toolchain that is not installed (nothing was run)
    inside: int = 0  # cases whose verdict was (partly) decided inside the box: weaker
    passed_inside: int = 0  # ... of which passed (see `rubric.INSIDE_SHARE`)

    @property
    def all_passed(self) -> bool:
        return self.total > 0 and self.passed == self.total and self.missing is None


class Toolchains:
    """Compilers found on this machine, looked up once."""

    @cached_property
    def gxx(self) -> str | None:
        return shutil.which("g++")

    @cached_property
    def rust_sysroot(self) -> str | None:
        rustc = shutil.which("rustc")
        if not rustc:
            return None
        try:  # rustup's proxy needs $HOME; the sandbox calls the real compiler in the sysroot
            out = subprocess.run([rustc, "--print", "sysroot"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        sysroot = out.stdout.strip()
        return sysroot if out.returncode == 0 and Path(sysroot, "bin", "rustc").exists() else None

    @property
    def rustc(self) -> str | None:
        return str(Path(self.rust_sysroot, "bin", "rustc")) if self.rust_sysroot else None

    def read_paths(self) -> list[str]:
        """Directories the sandboxed compilers must be able to read."""
        return [self.rust_sysroot] if self.rust_sysroot else []

    def compiler(self, language: str) -> tuple[str | None, str]:
        """(path or None, name as the user knows it)."""
        return {"cpp": (self.gxx, "g++"), "rust": (self.rustc, "rustc")}[language]

    def compile_argv(self, language: str, *arguments: str) -> list[str]:
        compiler, _ = self.compiler(language)
        if language == "rust":  # named, so rustc never needs /proc/self/exe to find it
            return [compiler, "--sysroot", self.rust_sysroot, "--edition", "2021", *arguments]
        return [compiler, "-std=c++17", *arguments]


def run_tests(
    sandbox: Sandbox,
    tools: Toolchains,
    language: str,
    code: str,
    cases: list[str],
    entry_point: str | None,
    limits: Limits,
    compile_limits: Limits,
) -> TestOutcome:
    if language == "python":
        return _python_tests(sandbox, code, [python_case(case, entry_point) for case in cases], limits)
    compiler, name = tools.compiler(language)
    if compiler is None:
        return TestOutcome(0, len(cases), reason=f"{name} is not installed: tests not run", missing=name)
    code, silencers = unsilenced(code, language)
    build = _cpp_program if language == "cpp" else _rust_program
    outcome = _compiled_tests(sandbox, tools, language, build(code, cases), limits, compile_limits)
    return replace(outcome, warnings=(outcome.warnings or 0) + silencers)


def build_check(
    sandbox: Sandbox, tools: Toolchains, language: str, code: str, limits: Limits, compile_limits: Limits
) -> TestOutcome:
    """For a task without tests: does the program build (c++/rust: compile, counting warnings;
    python: load and run as a module to its end). `compiled` says whether it did; total is 0."""
    if language == "python":
        with sandbox.directory() as box:
            _write(box, {"candidate.py": code, "cases.json": "[]"})
            run = sandbox.run(box, limits, python="load")
            _, load = read_events(read_bounded(box / RESULTS, MAX_EVENTS_BYTES), 0)
        loaded = run.ok and load == {"load": "ok"}
        reason = None if loaded else run.describe() if not run.ok else f"loading the code: {_load_failure(load)}"
        return TestOutcome(0, 0, run.cpu if run.ok else None, reason, compiled=loaded)
    compiler, name = tools.compiler(language)
    if compiler is None:
        return TestOutcome(0, 0, reason=f"{name} is not installed: not compiled", compiled=False, missing=name)
    code, silencers = unsilenced(code, language)
    if language == "cpp":
        source, argv = "candidate.cpp", tools.compile_argv("cpp", "-fsyntax-only", "-Wall", "-Wextra", "candidate.cpp")
    else:
        crate = "bin" if re.search(r"\bfn\s+main\s*\(", code) else "lib"
        source, argv = (
            "candidate.rs",
            tools.compile_argv(
                "rust", "--crate-type", crate, "--emit=metadata", "-A", "dead_code", "-o", "out.rmeta", "candidate.rs"
            ),
        )
    with sandbox.directory() as box:
        _write(box, {source: code})
        run = sandbox.run(box, compile_limits, argv=argv, compiler=True)
    warnings = _count_warnings(run.stderr, source, 1, code.count("\n") + 1) + silencers
    if not run.ok:
        return TestOutcome(0, 0, reason=_compile_error(language, run), warnings=warnings, compiled=False)
    return TestOutcome(0, 0, warnings=warnings)


def _write(box: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (box / name).write_text(text, encoding="utf-8", errors="surrogateescape")


def _load_failure(load: dict | None) -> str:
    return str(load.get("why", "failed")) if isinstance(load, dict) else "never finished"


# --- judging what came back ---------------------------------------------------------------------


def _outcome(
    report: str, splits: list[SplitCase], run: RunResult, warnings: int | None = None, load_matters: bool = False
) -> TestOutcome:
    reports, load = read_events(report, len(splits))
    passed, passed_inside, inside, first_failure = 0, 0, 0, None
    for index, (case_report, split) in enumerate(zip(reports, splits)):
        failure = judge_case(case_report, split.checks)
        inside += split.inside or case_report.inside
        if failure is None:
            passed += 1
            passed_inside += split.inside or case_report.inside
        elif first_failure is None:
            first_failure = f"case {index}: {failure}"
    if load_matters and load != {"load": "ok"}:
        first_failure = f"loading the code: {_load_failure(load)}"
    reason = first_failure
    if not run.ok:  # the process died: that is the dominant cause
        reason = run.describe() + (f" ({first_failure})" if first_failure else "")
    cpu = run.cpu if run.ok else None
    return TestOutcome(passed, len(splits), cpu, reason, warnings, inside=inside, passed_inside=passed_inside)


# --- python -------------------------------------------------------------------------------------


def python_case(case: str, entry_point: str | None) -> str:
    """A case as the judge runs it: a HumanEval `check(candidate)` definition is called."""
    try:
        defines_check = any(
            isinstance(node, ast.FunctionDef) and node.name == "check" for node in parse_python(case).body
        )
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return case  # it fails in the box the same way
    return f"{case}\ncheck({entry_point})" if entry_point and defines_check else case


def _python_tests(sandbox: Sandbox, code: str, cases: list[str], limits: Limits) -> TestOutcome:
    with sandbox.directory() as box:
        _write(box, {"candidate.py": code, "cases.json": json.dumps(cases)})
        run = sandbox.run(box, limits, python="tests")
        report = read_bounded(box / RESULTS, MAX_EVENTS_BYTES)
    return _outcome(report, [SplitCase(case) for case in cases], run, load_matters=True)


# --- compiled languages -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Program:
    files: dict[str, str]
    sources: list[str]  # what the compiler is given
    candidate: str  # the file holding the candidate's code, from line 1
    lines: int  # the candidate's line count
    splits: list[SplitCase]
    style: str  # "cases" (events on fd 3) or "main" (a test program of its own: exit status)


def _harness_file(name: str) -> str:
    return (HARNESS / name).read_text(encoding="utf-8")


def _cpp_program(code: str, cases: list[str]) -> _Program:
    lines = code.count("\n") + 1
    if len(cases) == 1 and re.search(r"\bint\s+main\s*\(", cases[0]):  # a whole test program: inside
        source = (
            f'#define main rfai_candidate_main\n#line 1 "candidate.cpp"\n{code}\n#undef main\n{_undefine(code)}'
            f'#line 1 "test.cpp"\n{cases[0]}\n'
        )
        return _Program(
            {"candidate.cpp": source},
            ["candidate.cpp"],
            "candidate.cpp",
            lines,
            [SplitCase(cases[0], [], True)],
            "main",
        )
    splits = [split_cpp(case) for case in cases]
    functions = "\n".join(
        f"void rfai_case_{i}(rfai::Out& rfai_out, int rfai_case) {{\n{split.source}\n}}"
        for i, split in enumerate(splits)
    )
    candidate = (
        f'#include "rfai_values.hpp"\n#define main rfai_candidate_main\n#line 1 "candidate.cpp"\n{code}\n'
        f'#undef main\n{_undefine(code)}#line 1 "rfai_cases.cpp"\n{functions}\n'
    )
    declarations = "".join(f"void rfai_case_{i}(rfai::Out&, int);\n" for i in range(len(splits)))
    calls = ", ".join(f"rfai_case_{i}" for i in range(len(splits))) or "nullptr"
    runner = (
        f'#include "rfai_out.hpp"\n{declarations}'
        f"int main() {{\n    rfai::Out out;\n    void (*cases[])(rfai::Out&, int) = {{{calls}}};\n"
        f"    for (int i = 0; i < {len(splits)}; ++i) {{\n"
        "        try { cases[i](out, i); out.finished(i); }\n"
        "        catch (const std::exception& e) { out.failed(i, e.what()); }\n"
        '        catch (...) { out.failed(i, "exception"); }\n    }\n    return 0;\n}\n'
    )
    files = {
        "candidate.cpp": candidate,
        "runner.cpp": runner,
        "rfai_out.hpp": _harness_file("rfai_out.hpp"),
        "rfai_values.hpp": _harness_file("rfai_values.hpp"),
    }
    return _Program(files, ["candidate.cpp", "runner.cpp"], "candidate.cpp", lines, splits, "cases")


_CPP_DEFINE = re.compile(r"^[ \t]*(?:#|%:)[ \t]*define[ \t]+([A-Za-z_]\w*)", re.M)


def _undefine(code: str) -> str:
    """`#undef` for every macro the candidate defines, so none reaches the cases or the
    harness's calls in them (`#define check(x) check(true)`)."""
    bare = blank_comments_and_strings(code.replace("\\\n", ""))
    return "".join(f"#undef {name}\n" for name in dict.fromkeys(_CPP_DEFINE.findall(bare)))


_RUST_TEST_FN = re.compile(r"#\[test\]\s*(?:pub\s+)?fn\s+(\w+)")


def _rust_program(code: str, cases: list[str]) -> _Program:
    joined = "\n".join(cases)
    names = _RUST_TEST_FN.findall(joined)
    if names:  # libtest-style tests: each #[test] fn is a case, run in the box (inside)
        helpers = _RUST_TEST_FN.sub(lambda m: f"pub fn {m.group(1)}", joined)
        helpers = re.sub(r"(?<![\w:])((?:debug_)?assert(?:_eq|_ne)?!)", r"::core::\1", helpers)
        splits = [SplitCase(f"{name}();", [], True) for name in names]
    else:
        helpers = ""
        splits = [split_rust(case) for case in cases]
    functions = "\n".join(
        f"pub fn case_{i}(rfai_out: &mut crate::rfai::Out, rfai_case: usize) {{\n{split.source}\n}}"
        for i, split in enumerate(splits)
    )
    candidate = (
        f"{code}\n\npub mod rfai_cases {{\n#![allow(unused)]\nuse super::*;\n"
        f"use crate::rfai::{{Plain as _, Opaque as _}};\n{helpers}\n{functions}\n}}\n"
    )
    calls = ", ".join(f"candidate::rfai_cases::case_{i}" for i in range(len(splits)))
    runner = (
        # No crate-wide `allow`: it would silence the candidate's own warnings too.
        '#[allow(unused)]\n#[path = "rfai.rs"]\npub mod rfai;\n#[path = "candidate.rs"]\npub mod candidate;\n'
        "fn main() {\n    let mut out = rfai::Out::open();\n"
        f"    let cases: [fn(&mut rfai::Out, usize); {len(splits)}] = [{calls}];\n"
        "    for (i, case) in cases.iter().enumerate() {\n"
        "        let run = ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| case(&mut out, i)));\n"
        "        match run {\n            Ok(()) => out.finished(i),\n"
        "            Err(panic) => {\n"
        "                let why = panic.downcast_ref::<&str>().map(|s| s.to_string())\n"
        "                    .or_else(|| panic.downcast_ref::<::std::string::String>().cloned())\n"
        '                    .unwrap_or_else(|| "panicked".to_string());\n'
        "                out.failed(i, &why);\n            }\n        }\n    }\n}\n"
    )
    files = {"main.rs": runner, "candidate.rs": candidate, "rfai.rs": _harness_file("rfai.rs")}
    return _Program(files, ["main.rs"], "candidate.rs", code.count("\n") + 1, splits, "cases")


def _compiled_tests(
    sandbox: Sandbox, tools: Toolchains, language: str, program: _Program, limits: Limits, compile_limits: Limits
) -> TestOutcome:
    if language == "cpp":
        argv = tools.compile_argv("cpp", "-O1", "-Wall", "-Wextra", "-I.", "-o", "prog", *program.sources)
    else:
        argv = tools.compile_argv("rust", "-C", "opt-level=1", "-A", "dead_code", "-o", "prog", *program.sources)
    with sandbox.directory() as box:
        _write(box, program.files)
        built = sandbox.run(box, compile_limits, argv=argv, outputs=("prog",), compiler=True)
        warnings = _count_warnings(built.stderr, program.candidate, 1, program.lines)
        if not built.ok or not (box / "prog").is_file():
            reason = _compile_error(language, built) if not built.ok else "the compiler wrote no program"
            return TestOutcome(
                0,
                len(program.splits),
                reason=reason,
                warnings=warnings,
                compiled=False,
                inside=sum(1 for split in program.splits if split.inside),
            )
        for name in program.files:  # the run gets the binary only
            (box / name).unlink()
        run = sandbox.run(box, limits, argv=["./prog"])
        report = read_bounded(box / RESULTS, MAX_EVENTS_BYTES)
    if program.style == "main":
        reason = None if run.ok else run.describe()
        cpu = run.cpu if run.ok else None
        return TestOutcome(int(run.ok), 1, cpu, reason, warnings, inside=1, passed_inside=int(run.ok))
    return _outcome(report, program.splits, run, warnings)


def _count_warnings(stderr: str, source: str, first: int, last: int) -> int:
    name = re.escape(source)
    lines = re.findall(rf"^{name}:(\d+):\d+: warning:", stderr, re.M)
    lines += re.findall(rf"^warning[^\n]*\n\s*--> {name}:(\d+):", stderr, re.M)
    return sum(1 for line in lines if first <= int(line) <= last)


def _compile_error(language: str, run: RunResult) -> str:
    if run.status != "exit":
        return "compiler " + run.describe()
    marker = ": error:" if language == "cpp" else "error"
    errors = [line.strip() for line in run.stderr.splitlines() if marker in line]
    return "does not compile: " + (errors[0] if errors else last_line(run.stderr))[:200]
