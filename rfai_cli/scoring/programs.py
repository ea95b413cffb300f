"""Turn (code, test cases) into sandboxed programs per language and read back passed/total.

All cases of one program run in one process; each case is counted on its own. A case that
fails does not stop the others (Python: exceptions are caught per case; C++: `assert` throws
and each case is wrapped in try/catch; Rust: libtest runs each `#[test]` on its own). When
the process dies (timeout, crash, limits) the cases it had not reported count as failed.

Results come back through a file tagged with a per-run random nonce, so a program printing
"ok" lines does not pass. (A program that introspects the harness could still forge them;
the sandbox contains damage, not cleverness.)
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from .sandbox import Limits, RunResult, Sandbox, last_line, read_bounded

RESULTS = ".rfai-results"
LANGUAGES = ("python", "cpp", "rust")


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


def run_tests(sandbox: Sandbox, tools: Toolchains, language: str, code: str, cases: list[str],
              entry_point: str | None, limits: Limits, compile_limits: Limits) -> TestOutcome:
    if language == "python":
        return _python_tests(sandbox, code, cases, entry_point, limits)
    compiler, name = tools.compiler(language)
    if compiler is None:
        return TestOutcome(0, len(cases), reason=f"{name} is not installed: tests not run", missing=name)
    build = _cpp_program if language == "cpp" else _rust_program
    return _compiled_tests(sandbox, language, compiler, build(code, cases), limits, compile_limits)


def build_check(sandbox: Sandbox, tools: Toolchains, language: str, code: str, limits: Limits,
                compile_limits: Limits) -> TestOutcome:
    """For a task without tests: does the program build (c++/rust: compile, counting warnings;
    python: load and run as a module to its end). `compiled` says whether it did; total is 0."""
    if language == "python":
        nonce = secrets.token_hex(8)
        with sandbox.directory() as box:
            run = sandbox.run(box, limits, python=_python_source(nonce, code, [], None))
            report = read_bounded(box / RESULTS)
        loaded = run.ok and f"{nonce} load ok" in report.splitlines()
        outcome = _outcome(report, nonce, 0, run)
        return TestOutcome(0, 0, outcome.cpu, outcome.reason, compiled=loaded)
    compiler, name = tools.compiler(language)
    if compiler is None:
        return TestOutcome(0, 0, reason=f"{name} is not installed: not compiled", compiled=False, missing=name)
    source = "main.cpp" if language == "cpp" else "main.rs"
    if language == "cpp":
        argv = [compiler, "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", source]
    else:
        crate = "bin" if re.search(r"\bfn\s+main\s*\(", code) else "lib"
        argv = [compiler, "--edition", "2021", "--crate-type", crate, "--emit=metadata", "-A", "dead_code",
                "-o", "out.rmeta", source]
    with sandbox.directory() as box:
        (box / source).write_text(code)
        run = sandbox.run(box, compile_limits, argv=argv, tool=True)
    warnings = _count_warnings(language, run.stderr, 1, code.count("\n") + 1)
    if not run.ok:
        return TestOutcome(0, 0, reason=_compile_error(language, run), warnings=warnings, compiled=False)
    return TestOutcome(0, 0, warnings=warnings)


# --- python -------------------------------------------------------------------------------

_PYTHON_HARNESS = '''\
NONCE, CODE, CASES, ENTRY = {nonce!r}, {code!r}, {cases!r}, {entry!r}
RESULTS = open({results!r}, "w", buffering=1)

def why(exc):
    text = type(exc).__name__ + (": " + str(exc) if str(exc) else "")
    return text[:200].replace("\\n", " ")

def run():
    namespace = {{"__name__": "solution", "__builtins__": __builtins__}}
    try:
        exec(compile(CODE, "solution.py", "exec"), namespace)
    except BaseException as exc:
        RESULTS.write(NONCE + " load fail " + why(exc) + "\\n")
        return
    RESULTS.write(NONCE + " load ok\\n")
    for index, case in enumerate(CASES):
        before = namespace.get("check")
        try:
            exec(compile(case, "test_%d.py" % index, "exec"), namespace)
            check = namespace.get("check")
            if ENTRY and callable(check) and check is not before:  # HumanEval style: check(candidate)
                if ENTRY not in namespace:
                    raise NameError("entry point %r is not defined" % ENTRY)
                check(namespace[ENTRY])
        except BaseException as exc:
            RESULTS.write("%s %d fail %s\\n" % (NONCE, index, why(exc)))
        else:
            RESULTS.write("%s %d ok\\n" % (NONCE, index))

run()
'''


def _python_tests(sandbox: Sandbox, code: str, cases: list[str], entry_point: str | None, limits: Limits) -> TestOutcome:
    nonce = secrets.token_hex(8)
    with sandbox.directory() as box:
        run = sandbox.run(box, limits, python=_python_source(nonce, code, cases, entry_point))
        report = read_bounded(box / RESULTS)
    return _outcome(report, nonce, len(cases), run)


def _python_source(nonce: str, code: str, cases: list[str], entry_point: str | None) -> str:
    return _PYTHON_HARNESS.format(nonce=nonce, code=code, cases=cases, entry=entry_point, results=RESULTS)


def _outcome(report: str, nonce: str, total: int, run: RunResult, warnings: int | None = None) -> TestOutcome:
    passed: set[int] = set()
    first_failure = None
    for line in report.splitlines():
        tag, _, rest = line.partition(" ")
        if tag != nonce:
            continue
        index, _, rest = rest.partition(" ")
        verdict, _, why = rest.partition(" ")
        if verdict == "ok" and index.isdigit() and int(index) < total:
            passed.add(int(index))
        elif verdict == "fail" and first_failure is None:
            first_failure = f"{'loading the code' if index == 'load' else f'case {index}'}: {why or 'failed'}"
    reason = first_failure
    if not run.ok:  # the process died: that is the dominant cause
        reason = run.describe() + (f" ({first_failure})" if first_failure else "")
    elif len(passed) < total and reason is None:
        reason = "some cases never reported a result"
    return TestOutcome(len(passed), total, run.cpu if run.ok else None, reason, warnings)


# --- compiled languages -------------------------------------------------------------------

@dataclass(frozen=True)
class _Program:
    source: str
    filename: str
    first_line: int  # the candidate's code spans these 1-based lines of `source`
    last_line: int
    total: int
    nonce: str
    style: str  # "cases" (nonce lines in RESULTS), "main" (exit status), "libtest" (libtest output)


_CPP_CASES = '''
#undef main
#include <cstdio>
#include <stdexcept>
#include <string>
struct rfai_assertion_failed : std::runtime_error {{ using std::runtime_error::runtime_error; }};
#undef assert
#define assert(...) do {{ if (!(__VA_ARGS__)) throw rfai_assertion_failed("assert(" #__VA_ARGS__ ") failed"); }} while (0)
{functions}
int main() {{
    std::FILE* out = std::fopen("{results}", "w");
    std::setvbuf(out, nullptr, _IONBF, 0);
    void (*cases[])() = {{{names}}};
    for (int i = 0; i < {total}; ++i) {{
        try {{ cases[i](); std::fprintf(out, "{nonce} %d ok\\n", i); }}
        catch (const std::exception& e) {{ std::fprintf(out, "{nonce} %d fail %.200s\\n", i, e.what()); }}
        catch (...) {{ std::fprintf(out, "{nonce} %d fail exception\\n", i); }}
    }}
    return 0;
}}
'''


def _cpp_program(code: str, cases: list[str]) -> _Program:
    nonce = secrets.token_hex(8)
    head = "#define main rfai_candidate_main\n"
    first, last = 2, 1 + code.count("\n") + 1
    if len(cases) == 1 and re.search(r"\bint\s+main\s*\(", cases[0]):  # a whole test program
        source = f"{head}{code}\n#undef main\n{cases[0]}\n"
        return _Program(source, "main.cpp", first, last, 1, nonce, "main")
    functions = "\n".join(f"static void rfai_case_{i}() {{\n{case}\n}}" for i, case in enumerate(cases))
    names = ", ".join(f"rfai_case_{i}" for i in range(len(cases)))
    tail = _CPP_CASES.format(functions=functions, names=names or "nullptr", total=len(cases), nonce=nonce,
                             results=RESULTS)
    return _Program(f"{head}{code}\n{tail}", "main.cpp", first, last, len(cases), nonce, "cases")


def _rust_program(code: str, cases: list[str]) -> _Program:
    joined = "\n".join(cases)
    if "#[test]" in joined:
        tests, total = joined, joined.count("#[test]")
    else:
        tests = "\n".join(f"#[test]\nfn rfai_case_{i}() {{\n{case}\n}}" for i, case in enumerate(cases))
        total = len(cases)
    return _Program(f"{code}\n{tests}\n", "main.rs", 1, code.count("\n") + 1, total, "", "libtest")


def _compiled_tests(sandbox: Sandbox, language: str, compiler: str, program: _Program, limits: Limits,
                    compile_limits: Limits) -> TestOutcome:
    if language == "cpp":
        argv = [compiler, "-std=c++17", "-O1", "-Wall", "-Wextra", "-o", "prog", program.filename]
    else:
        argv = [compiler, "--edition", "2021", "--test", "-C", "opt-level=1", "-A", "dead_code",
                "-o", "prog", program.filename]
    with sandbox.directory() as box:
        (box / program.filename).write_text(program.source)
        built = sandbox.run(box, compile_limits, argv=argv, tool=True)
        warnings = _count_warnings(language, built.stderr, program.first_line, program.last_line)
        if not built.ok:
            return TestOutcome(0, program.total, reason=_compile_error(language, built), warnings=warnings,
                               compiled=False)
        run_argv = [str(box / "prog")] + (["--test-threads=1", "--color", "never"] if program.style == "libtest" else [])
        run = sandbox.run(box, limits, argv=run_argv)
        report = read_bounded(box / RESULTS)
    if program.style == "cases":
        return _outcome(report, program.nonce, program.total, run, warnings)
    if program.style == "main":
        reason = None if run.ok else run.describe()
        return TestOutcome(int(run.ok), 1, run.cpu if run.ok else None, reason, warnings)
    return _libtest_outcome(run, program.total, warnings)


_LIBTEST_LINE = re.compile(r"^test (\S+) \.\.\. (ok|FAILED)$", re.M)


def _libtest_outcome(run: RunResult, total: int, warnings: int | None) -> TestOutcome:
    verdicts = dict(_LIBTEST_LINE.findall(run.stdout))
    passed = min(total, sum(1 for verdict in verdicts.values() if verdict == "ok"))
    reason = None
    failed = [name for name, verdict in verdicts.items() if verdict == "FAILED"]
    if failed:
        panic = re.search(r"panicked at [^\n]*\n([^\n]*)", run.stdout)
        reason = f"{failed[0]}: {panic.group(1).strip() if panic else 'failed'}"[:200]
    if run.status in ("timeout", "signal", "sandbox"):
        reason = run.describe() + (f" ({reason})" if reason else "")
    elif passed < total and reason is None:
        reason = "some tests never reported a result"
    cpu = run.cpu if run.status in ("ok", "exit") and len(verdicts) == total else None
    return TestOutcome(passed, total, cpu, reason, warnings)


def _count_warnings(language: str, stderr: str, first: int, last: int) -> int:
    if language == "cpp":
        lines = re.findall(r"^main\.cpp:(\d+):\d+: warning:", stderr, re.M)
    else:
        lines = re.findall(r"^warning[^\n]*\n\s*--> main\.rs:(\d+):", stderr, re.M)
    return sum(1 for line in lines if first <= int(line) <= last)


def _compile_error(language: str, run: RunResult) -> str:
    if run.status != "exit":
        return "compiler " + run.describe()
    marker = ": error:" if language == "cpp" else "error"
    errors = [line.strip() for line in run.stderr.splitlines() if marker in line]
    return "does not compile: " + (errors[0] if errors else last_line(run.stderr))[:200]
