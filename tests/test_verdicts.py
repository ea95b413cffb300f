"""Wrong answers that try to forge a verdict, an inflated static score, or a key, tried for real.

Each test first shows the trick paying where the verdict is decided by the answer's own code
(a naive harness, or the shape of rfai's earlier check), then that rfai stops it: a forged case
earns no pass decided outside, and at most `INSIDE_SHARE` of a case (never half of correctness).
`test_sandbox_as_user.py` runs this module again as an ordinary user.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from support.naive_harness import TOOLS, naive_binary, naive_python

from rfai_cli.config import ScoringSettings
from rfai_cli.scoring import ScoreItem, Scorer
from rfai_cli.scoring.programs import _count_warnings, _cpp_program
from rfai_cli.scoring.rubric import INSIDE_SHARE
from rfai_cli.scoring.sandbox import Limits, Sandbox
from rfai_cli.scoring.static import analyze, loop_depth_efficiency, parse_python, python_loop_depth
from rfai_cli.scoring.values import judge_case, read_events

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="containment is Linux's")
ROOT = os.geteuid() == 0


@pytest.fixture(scope="module", params=["namespaces", "fallback"])
def scorer(request):
    with Scorer(ScoringSettings(timeout=5, workers=2), namespaces=request.param == "namespaces") as scorer:
        yield scorer


def scored(scorer: Scorer, language: str, code: str, tests: list[str], entry_point: str | None = None):
    row = {"prompt": "p", "language": language, "tests": tests, "entry_point": entry_point}
    return scorer.score(ScoreItem(row, [code])).students[0]


def assert_not_forged(student) -> None:
    """No pass decided outside, and correctness below half (a pass decided inside earns a quarter)."""
    outside = student.tests["passed"] - student.tests.get("passed_inside", 0)
    assert outside == 0, student.tests
    assert student.breakdown["correctness"] <= INSIDE_SHARE < 0.5, student.breakdown


def needs(language: str) -> None:
    if TOOLS.compiler(language)[0] is None:
        pytest.skip(f"no {language} compiler on this machine")


# --- python: comparisons, harness state, exception classes ---------------------------------------

ALWAYS_EQUAL = (
    "class Anything:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n"
    "def f(*args):\n    return Anything()\n"
)
PYTHON_FORGERIES = {
    "compared_then_is_true": (ALWAYS_EQUAL, ["assert (f(2) == 4) is True"], None),
    "compared_then_equals_true": (ALWAYS_EQUAL, ["assert (f(3) == 9) == True"], None),
    "all_of_comparisons": (ALWAYS_EQUAL, ["assert all(f(i) == i * i for i in range(5))"], None),
    "helper_compares": (ALWAYS_EQUAL, ["def same(a, b):\n    return a == b\nassert same(f(2), 4)"], None),
    "float_whose_difference_lies": (
        "class Close(float):\n    def __sub__(self, other):\n        return 0.0\ndef f():\n    return Close(0.5)\n",
        ["assert abs(f() - 1/3) < 1e-9"],
        None,
    ),
    "humaneval_check_with_an_always_equal_list": (
        "class Same(list):\n    def __eq__(self, other):\n        return True\ndef f(xs):\n    return Same()\n",
        ["def check(candidate):\n    assert candidate([1, 2]) == [2, 4]\n    assert candidate([]) == []\n"],
        "f",
    ),
    "empties_the_harness_case_list": (
        "import gc, sys\nfor item in gc.get_objects():\n"
        "    if isinstance(item, list) and any(isinstance(x, str) and 'assert' in x for x in item):\n"
        "        item[:] = ['pass'] * len(item)\n"
        "frame = sys._getframe()\nwhile frame is not None:\n"
        "    for value in list(frame.f_locals.values()):\n"
        "        if isinstance(value, list) and any(isinstance(x, str) and 'assert' in x for x in value):\n"
        "            value[:] = ['pass'] * len(value)\n"
        "    frame = frame.f_back\ndef f(x):\n    return 0\n",
        ["assert f(2) == 4"],
        None,
    ),
    "forges_lines_on_inherited_descriptors": (
        "import os\nfor fd in range(3, 64):\n    try:\n"
        '        os.write(fd, b\'{"load": "ok"}\\n{"case": 0, "done": true}\\n\')\n'
        "    except OSError:\n        pass\nos._exit(0)\ndef f(x):\n    return 0\n",
        ["assert f(2) == 4"],
        None,
    ),
    "alarm_handler_forges_then_exits": (
        "import os, signal\ndef forge(*_):\n    for fd in range(3, 64):\n        try:\n"
        '            os.write(fd, b\'{"load": "ok"}\\n{"case": 0, "done": true}\\n\')\n'
        "        except OSError:\n            pass\n"
        "    os._exit(0)\nsignal.signal(signal.SIGALRM, forge)\n"
        "signal.setitimer(signal.ITIMER_REAL, 0.05)\ndef f(x):\n    while True:\n        pass\nf(0)\n",
        ["assert f(2) == 4"],
        None,
    ),
}


def cases_first_harness(code: str, tests: list[str], cwd: Path) -> int:
    """The shape of rfai's earlier harness: the cases read into a list before the candidate
    loads, then each run in the program's process."""
    runner = (
        f"import sys\ncases = {tests!r}\nns = {{'__name__': 'solution'}}\nexec({code!r}, ns)\n"
        "passed = 0\nfor case in cases:\n    try:\n        exec(case, dict(ns))\n        passed += 1\n"
        "    except BaseException:\n        pass\nsys.exit(0 if passed == len(cases) else 1)\n"
    )
    return subprocess.run([sys.executable, "-c", runner], cwd=cwd, capture_output=True, timeout=60).returncode


def channel_harness(code: str, cwd: Path) -> int:
    """The earlier harness's results channel: fd 3, inherited by the program's process. 0 when
    the lines the program left there read as a case that ran to its end."""
    channel = cwd / "channel"
    subprocess.run(["bash", "-c", f'"{sys.executable}" -c "$0" 3>"{channel}"', code], timeout=30)
    reports, load = read_events(channel.read_text(), 1)
    return 0 if load == {"load": "ok"} and judge_case(reports[0], []) is None else 1


@pytest.mark.parametrize("trick", sorted(PYTHON_FORGERIES))
def test_python_verdicts_cannot_be_forged(trick, scorer, tmp_path):
    code, tests, entry_point = PYTHON_FORGERIES[trick]
    if trick in ("forges_lines_on_inherited_descriptors", "alarm_handler_forges_then_exits"):
        fooled = channel_harness(code, tmp_path)
    elif trick == "empties_the_harness_case_list":
        fooled = cases_first_harness(code, tests, tmp_path)
    else:
        fooled = naive_python(code, [t + f"\ncheck({entry_point})" if entry_point else t for t in tests], tmp_path)
    assert fooled == 0, "the trick should fool a harness that runs in the program's process"
    assert_not_forged(scored(scorer, "python", code, tests, entry_point))


def test_honest_answers_to_those_tests_pass_outside(scorer):
    honest = "def f(*args):\n    return args[0] ** 2 if args and isinstance(args[0], int) else 1 / 3\n"
    student = scored(
        scorer, "python", honest, ["assert (f(2) == 4) is True", "assert all(f(i) == i * i for i in range(5))"]
    )
    assert student.tests["passed"] == 2 and "passed_inside" not in student.tests
    assert student.sources["verdicts"] == "outside" and student.breakdown["correctness"] == 1.0
    doubled = scored(
        scorer,
        "python",
        "def f(xs):\n    return [2 * x for x in xs]\n",
        PYTHON_FORGERIES["humaneval_check_with_an_always_equal_list"][1],
        "f",
    )
    assert doubled.breakdown["correctness"] == 1.0


SPOOF = (
    "class Sneaky(Exception):\n    @property\n    def __class__(self):\n        return ValueError\n"
    "def f(x):\n    raise Sneaky('not a ValueError')\n"
)
EXPECTS_VALUE_ERROR = "try:\n    f(1)\nexcept ValueError:\n    pass\nelse:\n    raise AssertionError('no ValueError')"


def test_an_exception_that_claims_another_class_is_judged_by_its_real_type(scorer):
    # The shape of rfai's earlier check: `isinstance(exception, ValueError)` asks `__class__`.
    namespace: dict = {}
    exec(SPOOF, namespace)
    try:
        namespace["f"](1)
    except Exception as exc:  # noqa: BLE001 - the spoof itself
        assert isinstance(exc, ValueError), "the spoof fools isinstance"
    assert_not_forged(scored(scorer, "python", SPOOF, [EXPECTS_VALUE_ERROR]))
    real = "class Bad(ValueError):\n    pass\ndef f(x):\n    raise Bad('a real subclass')\n"
    assert scored(scorer, "python", real, [EXPECTS_VALUE_ERROR]).breakdown["correctness"] == 1.0


def test_a_built_in_exception_with_its_own_constructor_comes_back_as_itself(scorer):
    # UnicodeDecodeError takes five arguments: the judge must still raise one for `except` to catch
    tests = ["try:\n    f(b'\\xff')\nexcept UnicodeDecodeError:\n    pass\nelse:\n    raise AssertionError"]
    student = scored(scorer, "python", "def f(data):\n    return data.decode('ascii')\n", tests)
    assert student.breakdown["correctness"] == 1.0 and student.sources["verdicts"] == "outside", student.tests


def test_a_value_the_program_keeps_can_be_used_but_not_asked_for_a_verdict(scorer):
    code = (
        "class Stack:\n    def __init__(self):\n        self.items = []\n"
        "    def push(self, x):\n        self.items.append(x)\n    def pop(self):\n        return self.items.pop()\n"
        "def numbers(n):\n    yield from range(n)\n"
    )
    tests = [
        "s = Stack()\ns.push(3)\ns.push(4)\nassert s.pop() == 4 and s.items == [3]",
        "assert list(numbers(3)) == [0, 1, 2]",
    ]
    student = scored(scorer, "python", code, tests)
    assert student.breakdown["correctness"] == 1.0 and student.sources["verdicts"] == "outside"


def test_a_mutated_argument_reaches_the_test(scorer):
    tests = ["xs = [3, 1, 2]\nsort_in_place(xs)\nassert xs == [1, 2, 3]"]
    good = scored(scorer, "python", "def sort_in_place(xs):\n    xs.sort()\n", tests)
    bad = scored(scorer, "python", "def sort_in_place(xs):\n    return sorted(xs)\n", tests)
    assert good.breakdown["correctness"] == 1.0 and bad.breakdown["correctness"] == 0.0


# --- c++ and rust --------------------------------------------------------------------------------

LYING_CPP = (
    "#include <vector>\nstruct Liar { template <class T> bool operator==(const T&) const { return true; } };\n"
    "Liar f() { return Liar{}; }\nstd::vector<Liar> g() { return {Liar{}}; }\n"
)
LYING_RUST = (
    "pub struct Liar;\nimpl PartialEq<i32> for Liar { fn eq(&self, _: &i32) -> bool { true } }\n"
    "pub fn f() -> Liar { Liar }\n"
)
COMPILED_FORGERIES = {
    "cpp_bracketed_comparison": ("cpp", LYING_CPP, ["assert((f() == 3));"]),
    "cpp_bracketed_vector_comparison": (
        "cpp",
        LYING_CPP
        + "template <class T> bool operator==(const std::vector<Liar>&, const std::vector<T>&) { return true; }\n",
        ["assert((g() == std::vector<int>{1, 2}));"],
    ),
    "cpp_comparison_in_a_lambda": (
        "cpp",
        LYING_CPP + "#include <algorithm>\n",
        ["std::vector<int> v{1, 2};\nassert(std::all_of(v.begin(), v.end(), [](int x) { return f() == x; }));"],
    ),
    "rust_bracketed_comparison": ("rust", LYING_RUST, ["assert!((f() == 3));"]),
}


@pytest.mark.parametrize("trick", sorted(COMPILED_FORGERIES))
def test_compiled_comparisons_cannot_be_forged(trick, scorer, tmp_path):
    language, code, tests = COMPILED_FORGERIES[trick]
    needs(language)
    assert naive_binary(language, code, tests, tmp_path) == 0, "the trick should fool a naive harness"
    assert_not_forged(scored(scorer, language, code, tests))


def test_the_candidates_macros_do_not_reach_the_harness(scorer):
    needs("cpp")
    code = "#define check(x) check(true)\n#define observe(...) check(true)\nint f(int x) { return -1; }\n"
    tests = ["for (int i = 0; i < 3; ++i) assert(f(i) == i);", "assert(f(2) == 2);"]
    student = scored(scorer, "cpp", code, tests)
    assert student.tests["passed"] == 0, student.tests  # before: the in-box check became check(true)


def run_own_main(code: str, test: str, folder: Path) -> int:
    """A C++ test with its own `main`, candidate first, the exit status trusted."""
    source = folder / "own_main.cpp"
    source.write_text(f"{code}\n{test}\n")
    subprocess.run([TOOLS.gxx, "-std=c++17", "-o", str(folder / "own_main"), str(source)], check=True, timeout=120)
    return subprocess.run([str(folder / "own_main")], capture_output=True, timeout=60).returncode


OWN_MAIN_TEST = "#include <cassert>\nint main() {\n    assert(add(2, 2) == 4);\n    return 0;\n}\n"
OWN_MAIN_FORGERIES = {
    "sigabrt_handled": (
        "#include <csignal>\n#include <cstdlib>\nstatic void bye(int) { std::_Exit(0); }\n"
        "struct Install { Install() { std::signal(SIGABRT, bye); } } install;\nint add(int a, int b) { return a - b; }\n"
    ),
    "ndebug": "#define NDEBUG\n#include <cassert>\nint add(int a, int b) { return a - b; }\n",
    "exit_before_main": (
        "#include <cstdlib>\nstruct Early { Early() { std::_Exit(0); } } early;\nint add(int a, int b) { return a - b; }\n"
    ),
}


@pytest.mark.parametrize("trick", sorted(OWN_MAIN_FORGERIES))
def test_a_test_programs_exit_status_earns_at_most_a_quarter(trick, scorer, tmp_path):
    needs("cpp")
    code = OWN_MAIN_FORGERIES[trick]
    assert run_own_main(code, OWN_MAIN_TEST, tmp_path) == 0, "the trick should fool an exit-status harness"
    assert_not_forged(scored(scorer, "cpp", code, [OWN_MAIN_TEST]))


def test_a_rust_panic_hook_earns_at_most_a_quarter(scorer, tmp_path):
    needs("rust")
    code = (
        "use std::io::Write;\nuse std::os::unix::io::FromRawFd;\n"
        "pub fn f(x: i32) -> i32 {\n    std::panic::set_hook(Box::new(|_| {\n"
        "        let mut out = unsafe { std::fs::File::from_raw_fd(3) };\n"
        '        for case in 0..4 { let _ = writeln!(out, "{{\\"case\\": {}, \\"done\\": true}}", case); }\n'
        "        std::process::exit(0);\n    }));\n    -x\n}\n"
    )
    tests = ["for i in 1..3 { assert_eq!(f(i), i); }"]  # a loop: decided inside
    assert_not_forged(scored(scorer, "rust", code, tests))


# --- static scores -------------------------------------------------------------------------------

PLAIN_PYTHON = (
    "def count_pairs(items):\n    total = 0\n    for a in items:\n        for b in items:\n"
    "            if a < b:\n                total += 1\n    return total\n"
)


def test_code_built_at_run_time_scores_no_better_than_written_plainly():
    hidden = f"exec({PLAIN_PYTHON!r})\n"
    plain = analyze(PLAIN_PYTHON, "python")
    # What the earlier analysis saw: no function to find fault with, and no loop.
    assert loop_depth_efficiency(python_loop_depth(parse_python(hidden))) > plain.efficiency
    seen = analyze(hidden, "python")
    for metric in ("quality", "documentation", "efficiency"):
        assert getattr(seen, metric) <= getattr(plain, metric), metric
    assert seen.quality < plain.quality and any("built at run time" in note for note in seen.notes)
    for disguise in ('import builtins\ngetattr(builtins, "ex" + "ec")(SRC)\n', "globals()['__builtins__'].eval('1')\n"):
        assert analyze(disguise, "python").quality < plain.quality, disguise
    ordinary = 'import re\nPATTERN = re.compile("a+")\nMODE = "compile"\nNAMES = {"vars": 1, "eval": 2}\n'
    assert analyze(ordinary, "python").notes == []  # words, and re.compile, build no code


WARNED_CPP = "int add(int a, int b) {\n    int unused = 0;\n    unsigned n = 3;\n    for (int i = 0; i < n; ++i) {}\n    return a + b;\n}\n"
WARNED_RUST = "pub fn add(a: i32, b: i32) -> i32 {\n    let unused = 0;\n    let mut m = 1;\n    a + b\n}\n"
SILENCED = {
    "cpp_line_directive": ("cpp", WARNED_CPP, '#line 1 "elsewhere.cpp"\n' + WARNED_CPP),
    "cpp_diagnostic_pragma": (
        "cpp",
        WARNED_CPP,
        '#pragma GCC diagnostic ignored "-Wunused-variable"\n#pragma GCC diagnostic ignored "-Wsign-compare"\n'
        + WARNED_CPP,
    ),
    "rust_allow_warnings": ("rust", WARNED_RUST, "#![allow(warnings)]\n" + WARNED_RUST),
}


@pytest.mark.parametrize("trick", sorted(SILENCED))
def test_silencing_the_compiler_scores_no_better(trick, scorer, tmp_path):
    language, plain, silenced = SILENCED[trick]
    needs(language)
    tests = ["assert(add(2, 3) == 5);"] if language == "cpp" else ["assert_eq!(add(2, 3), 5);"]
    if language == "cpp":  # the earlier count: warnings located in the candidate's own lines
        with Sandbox() as sandbox, sandbox.directory() as box:
            program = _cpp_program(silenced, tests)
            for name, text in program.files.items():
                (box / name).write_text(text)
            argv = TOOLS.compile_argv("cpp", "-fsyntax-only", "-Wall", "-Wextra", "-I.", *program.sources)
            built = sandbox.run(box, Limits(timeout=60, cpu=60, memory_mb=2048, nproc=64), argv=argv, compiler=True)
        assert _count_warnings(built.stderr, "candidate.cpp", 1, silenced.count("\n") + 1) == 0, built.stderr
    honest, hushed = scored(scorer, language, plain, tests), scored(scorer, language, silenced, tests)
    assert honest.breakdown["code_quality"] < 1.0
    assert hushed.breakdown["code_quality"] < honest.breakdown["code_quality"]


# --- keyrings and sandbox uids -------------------------------------------------------------------

KEYCTL, ADD_KEY = {"x86_64": (250, 248), "aarch64": (219, 217)}.get(os.uname().machine, (None, None))
ADD_KEYS = (  # in a session keyring of its own, so the unconfined run leaves nothing behind
    "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.syscall.restype = ctypes.c_long\n"
    "libc.syscall({keyctl}, 1, None)\n"
    "made = libc.syscall({add}, b'user', b'rfai-made', b'x', 1, -3)\n"
    "print('MADE', int(made > 0), 'READ', int(libc.syscall({keyctl}, 0, -3, 0) > 0))\n"
)


@pytest.mark.skipif(KEYCTL is None, reason="keyring syscalls known for x86_64 and aarch64 only")
def test_a_program_can_neither_make_nor_read_keys(tmp_path):
    script = ADD_KEYS.format(add=ADD_KEY, keyctl=KEYCTL)
    unconfined = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    if "MADE 0" in unconfined.stdout:
        pytest.skip("this kernel refuses keys to everyone")
    with Sandbox() as sandbox, sandbox.directory() as box:
        (box / "candidate.py").write_text(script)
        run = sandbox.run(box, Limits(timeout=10), python="load")
        assert "no-keyrings" in sandbox.isolation
    assert "MADE 0 READ 0" in run.stdout, run.stdout + run.stderr


def test_two_rfai_processes_never_share_a_sandbox_uid():
    """As root each rfai process has its own block of uids; an ordinary user's programs each get
    a user namespace of their own. Either way two programs at once share no user. (At once: a
    namespace's number is reused once it is gone.)"""
    from concurrent.futures import ThreadPoolExecutor

    program = (
        "import os, time\nprint('USER', os.getuid(), os.readlink('/proc/self/ns/user'), flush=True)\ntime.sleep(2)\n"
    )

    def user_of(sandbox: Sandbox) -> str:
        with sandbox.directory() as box:
            (box / "candidate.py").write_text(program)
            return sandbox.run(box, Limits(timeout=20), python="load").stdout

    with Sandbox() as first, Sandbox() as second, ThreadPoolExecutor(2) as pool:
        one, two = pool.map(user_of, (first, second))
    assert one.startswith("USER") and two.startswith("USER") and one != two, (one, two)


def refuse_joining(errno_value: int) -> None:
    """A seccomp filter on this process (and what it starts): keyctl(JOIN_SESSION_KEYRING) fails
    with `errno_value`, every other call works: a kernel that cannot give a program a fresh
    session keyring (a full key quota, no memory), made real."""
    arch = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}[os.uname().machine]
    ld, jeq, ret = 0x20, 0x15, 0x06
    program = [
        (ld, 0, 0, 4),
        (jeq, 1, 0, arch),
        (ret, 0, 0, 0x7FFF0000),
        (ld, 0, 0, 0),
        (jeq, 0, 2, KEYCTL),
        (ld, 0, 0, 16),  # the first argument: the keyctl command
        (jeq, 1, 0, 1),  # KEYCTL_JOIN_SESSION_KEYRING
        (ret, 0, 0, 0x7FFF0000),
        (ret, 0, 0, 0x00050000 | errno_value),
    ]
    filters = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *op) for op in program))
    fprog = ctypes.create_string_buffer(struct.pack("HxxxxxxP", len(program), ctypes.addressof(filters)))
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(38, 1, 0, 0, 0) == 0  # no_new_privs, as seccomp requires
    assert libc.prctl(22, 2, ctypes.c_void_p(ctypes.addressof(fprog)), 0, 0) == 0


@pytest.mark.skipif(KEYCTL is None, reason="keyring syscalls known for x86_64 and aarch64 only")
def test_a_session_keyring_that_cannot_be_joined_stops_the_program():
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the filter stays with this child
        try:
            os.close(read)
            refuse_joining(errno.EDQUOT)
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            libc.syscall(KEYCTL, 1, None)  # refused: this process keeps its session keyring
            key = libc.syscall(ADD_KEY, b"user", b"rfai-login-secret", b"s", 1, -3)
            # The earlier shape: the join's error ignored, the program runs with that keyring.
            search = f"import ctypes\nprint('FOUND', ctypes.CDLL(None).syscall({KEYCTL}, 10, -3, b'user', b'rfai-login-secret', 0))\n"
            naive = subprocess.run([sys.executable, "-c", search], capture_output=True, text=True, timeout=30).stdout
            with Sandbox() as sandbox, sandbox.directory() as box:
                (box / "candidate.py").write_text(search)
                run = sandbox.run(box, Limits(timeout=10), python="load")
            os.write(write, json.dumps([key, naive, run.stdout, run.stderr]).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        key, naive, stdout, stderr = json.loads(pipe.read())
    os.waitpid(child, 0)
    if key < 0:
        pytest.skip("this kernel refuses keys")
    assert "FOUND" in naive and "FOUND -1" not in naive, naive
    assert "FOUND" not in stdout and "cannot join a fresh session keyring" in stderr, stdout + stderr
