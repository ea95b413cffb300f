"""The scoring core: extraction, static metrics, rubric arithmetic, tests per language, the judge."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from rfai_cli.config import ScoringSettings, load_config
from rfai_cli.errors import ConfigError
from rfai_cli.scoring import Judge, JudgeVerdict, ScoreItem, Scorer, compute_reward, extract_code, fill_record
from rfai_cli.scoring.programs import Toolchains
from rfai_cli.scoring.rubric import timing_efficiency
from rfai_cli.scoring.static import analyze_python, brace_documentation, brace_loop_depth

ADD_TESTS = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(2, 2) == 4"]
GOOD = 'def add(a, b):\n    """Return a + b."""\n    return a + b\n'


@pytest.fixture(scope="module")
def scorer():
    with Scorer(ScoringSettings(timeout=5, workers=2)) as scorer:
        yield scorer


# --- extraction ---------------------------------------------------------------------------


def test_extract_prefers_the_rows_language_then_first_block_then_text():
    answer = "Here:\n```text\nnot code\n```\n```Python\ndef f():\n    pass\n```\n"
    assert extract_code(answer, "python") == "def f():\n    pass\n"
    assert extract_code(answer, "rust") == "not code\n"
    assert extract_code("x = 1", "python") == "x = 1"
    assert extract_code("```c++\nint x;\n```", "cpp") == "int x;\n"
    assert extract_code("```python\ndef f():\n    return 1\n", "python") == "def f():\n    return 1\n"  # cut off


# --- rubric -------------------------------------------------------------------------------


def test_seed_reward_example_holds_exactly():
    assert compute_reward(0.85, 0.92) == 0.924
    assert compute_reward(0.5, 0.0) == 2.0  # floor 0.05, then the cap
    assert compute_reward(0.04, 0.0) == 0.8


def test_weights_must_sum_to_one(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("scoring:\n  weights:\n    correctness: 0.5\n")
    with pytest.raises(ConfigError, match="sum to 1"):
        load_config(path)


def test_timing_efficiency_is_bucketed():
    assert timing_efficiency(0.001, 0.03) == 1.0  # both below timer noise
    assert timing_efficiency(0.11, 0.1) == timing_efficiency(0.14, 0.1) == 1.0
    assert timing_efficiency(0.25, 0.1) == 0.75
    assert timing_efficiency(0.6, 0.1) == 0.5
    assert timing_efficiency(5.0, 0.1) == 0.25


# --- static analysis ----------------------------------------------------------------------


def test_python_quality_deductions_are_listed():
    code = (
        "from os import *\ndef f(x):\n    try:\n        return undefined_thing(x)\n    except:\n        return None\n"
    )
    report = analyze_python(code)
    assert report.parses
    assert report.quality == pytest.approx(1 - 0.15 - 0.1)  # a star import hides undefined names
    assert any("bare except" in note for note in report.notes)
    report = analyze_python("def f(x):\n    return helper(x) + y\n")
    assert report.quality == pytest.approx(0.6)
    assert "undefined name 'helper'" in report.notes


def test_python_documentation_and_loop_depth():
    assert analyze_python(GOOD).documentation == 1.0
    assert (
        analyze_python(
            "def f():\n    pass\n\n# helper\ndef g():\n    pass\n\ndef _private():\n    pass\n"
        ).documentation
        == 0.5
    )
    nested = "def f(n):\n    for i in range(n):\n        for j in range(n):\n            for k in range(n):\n                pass\n"
    assert analyze_python(nested).efficiency == 0.5
    broken = analyze_python("def f(:\n")
    assert not broken.parses and broken.quality == 0.0


def test_brace_languages_documentation_and_loops():
    rust = "/// Adds.\npub fn add(a: i32, b: i32) -> i32 { a + b }\nfn sub(a: i32, b: i32) -> i32 { a - b }\nfn main() {}\n"
    assert brace_documentation(rust, "rust") == 0.5
    cpp = "// Sum.\nint sum(const std::vector<int>& v) {\n  int s = 0;\n  for (int x : v) { for (;;) { break; } s += x; }\n  return s;\n}\n"
    assert brace_documentation(cpp, "cpp") == 1.0
    assert brace_loop_depth(cpp) == 2


# --- python tests in the sandbox ----------------------------------------------------------


def test_each_case_counts_on_its_own(scorer):
    half = "def add(a, b):\n    return abs(a) + b\n"
    result = scorer.score(ScoreItem({"prompt": "add", "language": "python", "tests": ADD_TESTS}, [half], GOOD))
    student = result.students[0]
    assert student.tests["passed"] == 2 and student.tests["total"] == 3
    assert student.breakdown["correctness"] == pytest.approx(2 / 3, abs=1e-4)
    assert "case 1" in student.tests["reason"]
    assert student.sources["efficiency"] == "static"  # the student did not pass everything
    assert result.teacher.sources["efficiency"] == "tests"


def test_humaneval_style_check_and_entry_point(scorer):
    row = {
        "prompt": "p",
        "language": "python",
        "entry_point": "add",
        "tests": "def check(candidate):\n    assert candidate(1, 2) == 3\n",
    }
    good, wrong = scorer.score_many([ScoreItem(row, [GOOD]), ScoreItem(row, ["def plus(a, b):\n    return a + b\n"])])
    assert good.students[0].tests["passed"] == 1
    assert wrong.students[0].tests["passed"] == 0
    assert "'add' is not defined" in wrong.students[0].tests["reason"]


def test_printing_fake_results_does_not_pass(scorer):
    forger = "print('ok'); open('.rfai-results', 'w').write('0 ok\\n1 ok\\n')\ndef add(a, b):\n    return 7\n"
    result = scorer.score(ScoreItem({"prompt": "p", "tests": ADD_TESTS}, [forger]))
    assert result.students[0].tests["passed"] == 0


def test_efficiency_compares_run_time_with_the_teacher(scorer):
    row = {"prompt": "p", "language": "python", "tests": ["assert total(300_000) == sum(range(300_000))"]}
    fast = "def total(n):\n    return n * (n - 1) // 2\n"
    slow = (
        "def total(n):\n    count = 0\n    for _ in range(40):\n        count = 0\n"
        "        for i in range(n):\n            count += i\n    return count\n"
    )
    result = scorer.score(ScoreItem(row, [slow, fast], fast))
    slow_score, fast_score = result.students
    assert slow_score.sources["efficiency"] == fast_score.sources["efficiency"] == "tests"
    assert fast_score.breakdown["efficiency"] == 1.0
    assert slow_score.breakdown["efficiency"] < 1.0


def test_same_code_same_scores(scorer):
    row = {"prompt": "p", "language": "python", "tests": ADD_TESTS}
    first = fill_record({}, scorer.score(ScoreItem(row, [GOOD], GOOD)))
    second = fill_record({}, scorer.score(ScoreItem(row, [GOOD], GOOD)))
    for record in (first, second):
        for side in ("student", "teacher"):
            record["test_results"][side].pop("cpu_s", None)
    assert first == second


def test_fill_record_fields_and_no_teacher(scorer):
    record = fill_record({"prompt": "p"}, scorer.score(ScoreItem({"prompt": "p", "tests": ADD_TESTS}, [GOOD])))
    assert record["scoring_breakdown"] == {
        "correctness": 0.3,
        "code_quality": 0.3,
        "efficiency": 0.2,
        "documentation": 0.2,
    }
    assert record["student_score"] == 1.0 and record["teacher_score"] is None and record["reward"] is None
    assert (
        set(record["student_breakdown"])
        == set(record["score_sources"]["student"]) - {"verdicts"}
        == set(record["scoring_breakdown"])
    )
    assert record["score_sources"]["student"]["verdicts"] == "outside"  # plain asserts: every verdict by value
    assert "no-capabilities" in record["score_sources"]["sandbox"]


def test_without_tests_correctness_is_measured_marked_and_capped(scorer):
    stub = 'def add(a, b):\n    """Add."""\n    raise NotImplementedError\n'
    crashes = GOOD + "raise SystemExit(add(1, 2))\n"
    answers = ["def f(:\n", "", stub, 'print("ok")\n', crashes, GOOD]
    result = scorer.score(ScoreItem({"prompt": "p", "language": "python", "entry_point": "add"}, answers))
    broken, empty, stubbed, prose, crashing, fine = result.students
    assert {s.sources["correctness"] for s in result.students} == {"measured"}
    assert broken.score == empty.score == crashing.score == 0.0  # does not parse / nothing / does not run to its end
    assert stubbed.breakdown["correctness"] == prose.breakdown["correctness"] == 0.2  # builds, defines nothing real
    assert fine.breakdown["correctness"] == 0.5 and fine.score == 0.5  # the cap: all criteria scaled by 0.5
    assert "capped at 0.5" in fine.tests["notes"][0]
    other_name = scorer.score(ScoreItem({"prompt": "p", "language": "python", "entry_point": "plus"}, [GOOD]))
    assert other_name.students[0].breakdown["correctness"] == 0.2  # the entry point is not defined


# --- the judge ----------------------------------------------------------------------------


class FixedJudge:
    """A deterministic judge: fixed ratings, or no verdict for code containing 'UNJUDGEABLE'."""

    def __init__(self, scores: dict[str, float]):
        self.scores = scores
        self.calls: list[tuple[str, str]] = []

    def judge(self, prompt: str, code: str, language: str) -> JudgeVerdict:
        self.calls.append((prompt, language))
        if "UNJUDGEABLE" in code:
            return JudgeVerdict.unavailable("the teacher gave no parseable rating")
        return JudgeVerdict(self.scores)


def test_judge_blends_into_quality_and_documentation_and_never_overrides_tests():
    judge = FixedJudge({"correctness": 0.0, "code_quality": 0.0, "documentation": 0.0})
    assert isinstance(judge, Judge)
    with Scorer(ScoringSettings(judge_weight=0.25, workers=2), judge) as scorer:
        result = scorer.score(ScoreItem({"prompt": "add", "language": "python", "tests": ADD_TESTS}, [GOOD]))
    student = result.students[0]
    assert student.breakdown["correctness"] == 1.0 and student.sources["correctness"] == "tests"
    assert student.breakdown["code_quality"] == 0.75 and student.sources["code_quality"] == "static+judge"
    assert student.breakdown["documentation"] == 0.75 and student.sources["documentation"] == "static+judge"
    assert judge.calls == [("add", "python")]


def test_judge_gives_correctness_without_tests_and_falls_back_when_it_cannot():
    judge = FixedJudge({"correctness": 0.4, "code_quality": 1.0, "documentation": 1.0})
    with Scorer(ScoringSettings(judge_weight=0.5, workers=2), judge) as scorer:
        result = scorer.score(ScoreItem({"prompt": "p", "language": "python"}, [GOOD, GOOD + "# UNJUDGEABLE\n"]))
    judged, unjudged = result.students
    assert judged.breakdown["correctness"] == 0.4 and judged.sources["correctness"] == "judge"
    assert judged.breakdown["documentation"] == 0.4 and judged.score == 0.4  # gated by the judged correctness
    assert unjudged.breakdown["correctness"] == 0.5 and unjudged.sources["correctness"] == "measured"
    assert unjudged.sources["code_quality"] == "static"
    assert any("no parseable rating" in note for note in unjudged.tests["notes"])


# --- compiled languages -------------------------------------------------------------------

CPP = "// Adds two numbers.\nint add(int a, int b) {\n    return a + b;\n}\n"
CPP_TESTS = ["assert(add(1, 2) == 3);", "assert(add(2, 2) == 5);", "int* p = nullptr; (void)p; assert(add(0, 0) == 0);"]
RUST = "/// Adds two numbers.\npub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n"
RUST_TESTS = ["assert_eq!(add(1, 2), 3);", "assert_eq!(add(2, 2), 5);", "assert_eq!(add(0, 0), 0);"]


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
def test_cpp_cases_count_separately_and_warnings_cost_quality(scorer):
    warned = "int add(int a, int b) {\n    int unused;\n    return a + b;\n}\n"
    result = scorer.score(ScoreItem({"prompt": "p", "language": "c++", "tests": CPP_TESTS}, [CPP, warned, "int add("]))
    clean, noisy, broken = result.students
    assert clean.tests["passed"] == 2 and clean.tests["total"] == 3
    assert "add(2, 2) == 5 failed: got 4" in clean.tests["reason"]
    assert clean.breakdown["code_quality"] == 0.0  # a failing case: correctness only
    passing = [CPP_TESTS[0], CPP_TESTS[2]]
    clean, noisy = scorer.score(ScoreItem({"prompt": "p", "language": "c++", "tests": passing}, [CPP, warned])).students
    assert clean.breakdown["code_quality"] == 1.0 and noisy.breakdown["code_quality"] == 0.9
    assert broken.breakdown["correctness"] == 0.0 and "does not compile" in broken.tests["reason"]


@pytest.mark.skipif(shutil.which("rustc") is None, reason="rustc not installed")
def test_rust_cases_and_test_functions(scorer):
    own_tests = "#[test]\nfn one() { assert_eq!(add(1, 1), 2); }\n#[test]\nfn two() { assert_eq!(add(1, 1), 3); }\n"
    result = scorer.score_many(
        [
            ScoreItem({"prompt": "p", "language": "rust", "tests": RUST_TESTS}, [RUST]),
            ScoreItem({"prompt": "p", "language": "rs", "tests": own_tests}, [RUST]),
        ]
    )
    wrapped, declared = (r.students[0] for r in result)
    assert (wrapped.tests["passed"], wrapped.tests["total"]) == (2, 3)
    assert (declared.tests["passed"], declared.tests["total"]) == (1, 2)
    passing = scorer.score(ScoreItem({"prompt": "p", "language": "rust", "tests": RUST_TESTS[::2]}, [RUST]))
    assert passing.students[0].breakdown["documentation"] == 1.0


class NoCompilers(Toolchains):
    """The toolchains of a machine where neither g++ nor rustc is installed."""

    gxx = None
    rust_sysroot = None


def test_missing_compiler_is_said_not_scored_silently():
    with Scorer(ScoringSettings(workers=2), tools=NoCompilers()) as scorer:
        result = scorer.score(ScoreItem({"prompt": "p", "language": "cpp", "tests": CPP_TESTS}, [CPP]))
    student = result.students[0]
    assert student.sources["correctness"] == "unassessed" and student.sources["code_quality"] == "unassessed"
    assert student.score == 0.0  # nobody could check it: never a high score
    assert student.tests["reason"] == "g++ is not installed: tests not run"


def test_a_language_nobody_can_run_is_unassessed_not_measured(scorer):
    result = scorer.score(
        ScoreItem({"prompt": "p", "language": "javascript"}, ["// adds\nfunction add(a, b) { return a + b; }\n"])
    )
    student = result.students[0]
    assert student.sources["correctness"] == "unassessed" and student.score == 0.0


@pytest.mark.parametrize("language", ["cpp", "rust"])
def test_static_analysis_of_a_long_answer_is_linear_in_its_size(language):
    """A 1 MB answer of many small documented functions: 20x the code may cost about 20x the time,
    not 400x (each function's line was once counted from the top of the file: 5 s per MB)."""
    import time

    from rfai_cli.scoring.static import analyze

    def answer(functions: int) -> str:
        if language == "cpp":
            return "".join(f"// doc\nint f{i}(int x) {{ return x + {i}; }}\n" for i in range(functions))
        return "".join(f"/// doc\nfn f{i}(x: i32) -> i32 {{ x + {i} }}\n" for i in range(functions))

    def seconds(code: str) -> float:
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            assert analyze(code, language).documentation == 1.0
            best = min(best, time.perf_counter() - started)
        return best

    small, large = answer(1_000), answer(20_000)
    assert seconds(large) < 80 * seconds(small)


def test_an_answers_own_syntax_warnings_stay_out_of_rfais_output():
    """Invalid escape sequences in an answer make the parser warn (DeprecationWarning on 3.11,
    SyntaxWarning from 3.12): those lines once reached rfai's stderr."""
    import warnings

    from rfai_cli.scoring.static import analyze

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        analyze('def f(x):\n    """Match digits."""\n    return "\\d" in x\n', "python")
    assert [str(w.message) for w in caught] == []


# A scorer in a process of its own that, as `rfai train` and `collect` do on a first Ctrl-C,
# handles SIGINT to finish its work, and is interrupted while a program runs in the sandbox.
CTRL_C_DURING_A_PROGRAM = """
import json, signal
from rfai_cli.scoring import ScoreItem, Scorer
signal.signal(signal.SIGINT, lambda *_: print("stopping after this", flush=True))
row = {"prompt": "p", "language": "python", "tests": ["assert f() == 1"]}
with Scorer() as scorer:
    scorer.score(ScoreItem(row, ["def f():\\n    return 1\\n"]))
    print("ready", flush=True)
    slow = "import time\\ndef f():\\n    time.sleep(2)\\n    return 1\\n"
    print(json.dumps(scorer.score(ScoreItem(row, [slow])).students[0].tests), flush=True)
"""


def test_a_ctrl_c_in_the_terminal_does_not_kill_the_sandbox_mid_program():
    """The terminal sends Ctrl-C to its whole process group; the sandbox's server must not be in
    it, or the program running in it dies and the step that should finish fails instead."""
    scorer = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_DURING_A_PROGRAM],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal's foreground job
    )
    assert scorer.stdout.readline() == "ready\n"
    time.sleep(0.7)  # the slow program is running
    os.killpg(scorer.pid, signal.SIGINT)
    out, err = scorer.communicate(timeout=60)
    assert scorer.returncode == 0, err
    assert out.splitlines()[0] == "stopping after this"
    assert json.loads(out.splitlines()[-1])["passed"] == 1
