"""The scoring core that `collect`, `train` and `rfai score` share.

    with Scorer(config.scoring, judge=None) as scorer:
        results = scorer.score_many([ScoreItem(row, [answer1, answer2], teacher_answer), ...])
        fill_record(record, results[0], index=1)   # the fields for the row of answer2

Every program of a batch (students and teacher) is evaluated concurrently on a pool of
`scoring.workers` threads, each driving one sandboxed program at a time; identical code in a
batch is evaluated once. Answers are passed through `extract_code`, so raw model output and
already-extracted code both work.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..config import ScoringSettings
from ..records import normalize_language
from .extract import extract_code
from .judge import Judge, JudgeVerdict
from .programs import LANGUAGES, TestOutcome, Toolchains, build_check, run_tests
from .rubric import (
    CRITERIA,
    GATED,
    MEASURED_BUILDS,
    MEASURED_CAP,
    MEASURED_DEFINES,
    blend,
    compute_reward,
    correctness_gate,
    tests_correctness,
    timing_efficiency,
    weighted_score,
)
from .sandbox import Limits, Sandbox
from .static import WARNING_PENALTY, StaticReport, analyze, clamp
from .tested_names import in_student_names

MAX_NOTES = 5


def test_cases(row: Mapping[str, Any]) -> list[str]:
    """A row's test cases: `tests` as a string (one case) or a list of strings. ValueError if malformed."""
    tests = row.get("tests")
    if tests is None or tests == "":
        return []
    if isinstance(tests, str):
        return [tests]
    if isinstance(tests, list) and all(isinstance(case, str) for case in tests):
        return [case for case in tests if case.strip()]
    raise ValueError("field 'tests' should be a string or a list of strings")


@dataclass(frozen=True)
class ScoreItem:
    """One prompt row (prompt, language, tests, entry_point), its student answers and the teacher's."""

    row: Mapping[str, Any]
    student_code: Sequence[str]
    teacher_code: str | None = None

    @property
    def language(self) -> str:
        return normalize_language(self.row.get("language")) or "python"

    @classmethod
    def from_record(cls, row: Mapping[str, Any]) -> "ScoreItem":
        """The item for re-scoring a dataset row; ValueError naming what is missing or malformed."""
        if not isinstance(row.get("student_code"), str):
            raise ValueError("no 'student_code' to score")
        test_cases(row)
        teacher = row.get("teacher_code")
        return cls(row, [row["student_code"]], teacher if isinstance(teacher, str) and teacher.strip() else None)


@dataclass(frozen=True)
class CodeScore:
    """One program's score: the weighted total, per-criterion values and where each came from."""

    score: float
    breakdown: dict[str, float]
    sources: dict[str, str]
    tests: dict[str, Any]


@dataclass(frozen=True)
class ScoreResult:
    students: list[CodeScore]
    teacher: CodeScore | None
    rewards: list[float | None]  # None when there is no teacher code to compare with
    teacher_reward: float | None = None  # the teacher's own answer rewarded by the same rule (teacher/teacher)
    weights: dict[str, float] = field(default_factory=dict)
    isolation: list[str] | None = None  # what contained the programs (None: nothing ran)


def fill_record(record: dict, result: ScoreResult, index: int = 0) -> dict:
    """Write the score fields of student answer `index` (and the teacher's) into `record`."""
    return _fill(record, result, result.students[index], result.rewards[index])


def fill_teacher_sample(record: dict, result: ScoreResult) -> dict:
    """Write the score fields of the teacher's own answer taken as one more sample of its group
    (the teacher in the group, train/guidance.py): its score in the student fields, its reward."""
    return _fill(record, result, result.teacher, result.teacher_reward)


def _fill(record: dict, result: ScoreResult, student: CodeScore, reward: float | None) -> dict:
    teacher = result.teacher
    record.update(
        student_score=student.score,
        teacher_score=teacher.score if teacher else None,
        reward=reward,
        scoring_breakdown=dict(result.weights),
        student_breakdown=student.breakdown,
        teacher_breakdown=teacher.breakdown if teacher else None,
        score_sources={
            "student": student.sources,
            "teacher": teacher.sources if teacher else None,
            "sandbox": result.isolation,
        },
        test_results={"student": student.tests, "teacher": teacher.tests if teacher else None},
    )
    return record


@dataclass(frozen=True)
class _Evaluation:
    """Everything measured about one program, before it is turned into criteria."""

    static: StaticReport
    tests: TestOutcome | None  # None when the task has no tests
    build: TestOutcome | None  # without tests: compiled (c++/rust) or loaded and run (python)
    verdict: JudgeVerdict | None
    entry_point: str | None = None
    tested_as: str | None = None  # the tests' function mapped to this code's (tested_names.py)


class Scorer:
    """Thread-safe; holds the sandbox and the worker pool until `close`."""

    def __init__(
        self,
        settings: ScoringSettings | None = None,
        judge: Judge | None = None,
        *,
        tools: Toolchains | None = None,
        namespaces: bool = True,
        on_notice: Callable[[str], None] | None = None,
    ):
        """`on_notice` hears, once, when the kernel refused the sandbox's private view."""
        self.settings = settings or ScoringSettings()
        self._on_notice = on_notice
        self.judge = judge
        self.workers = self.settings.workers or os.cpu_count() or 1
        self.tools = tools or Toolchains()
        self._namespaces = namespaces
        self._sandbox: Sandbox | None = None
        self._sandbox_lock = threading.Lock()
        # Two programs in flight per worker: half of a short program's life is process start/exit
        # handoffs that leave the CPU idle; CPU-time limits and timings are per program anyway.
        self._pool = ThreadPoolExecutor(2 * self.workers, thread_name_prefix="rfai-score")
        seconds = math.ceil(self.settings.timeout)
        self.limits = Limits(timeout=self.settings.timeout, cpu=seconds, memory_mb=self.settings.memory_mb)
        compile_seconds = math.ceil(self.settings.compile_timeout)
        self.compile_limits = Limits(
            timeout=self.settings.compile_timeout,
            cpu=compile_seconds,
            memory_mb=self.settings.compile_memory_mb,
            fsize_mb=256,
            nproc=64,
            nofile=256,
        )

    @property
    def sandbox(self) -> Sandbox:
        with self._sandbox_lock:  # first use comes from several pool threads at once
            if self._sandbox is None:
                self._sandbox = Sandbox(read_paths=self.tools.read_paths(), namespaces=self._namespaces)
                weak = self._sandbox.weak_isolation
                if weak and self._on_notice:
                    self._on_notice(weak)
            return self._sandbox

    @property
    def isolation(self) -> list[str]:
        return self.sandbox.isolation

    def score(self, item: ScoreItem) -> ScoreResult:
        return self.score_many([item])[0]

    def score_many(self, items: Iterable[ScoreItem]) -> list[ScoreResult]:
        """Score every answer of every item; programs run concurrently, results come back in order."""
        items = list(items)
        cache: dict[tuple, Future] = {}

        def submit(item: ScoreItem, answer: str) -> Future:
            code = extract_code(answer, item.language)
            cases = test_cases(item.row)
            key = (
                item.language,
                code,
                tuple(cases),
                item.row.get("entry_point"),
                item.row.get("prompt"),
                item.teacher_code,
            )
            if key not in cache:
                cache[key] = self._pool.submit(self._evaluate, item, code, cases)
            return cache[key]

        pending = [
            (
                [submit(item, a) for a in item.student_code],
                submit(item, item.teacher_code) if item.teacher_code is not None else None,
            )
            for item in items
        ]
        return [self._assemble(students, teacher) for students, teacher in pending]

    def _evaluate(self, item: ScoreItem, code: str, cases: list[str]) -> _Evaluation:
        language = item.language
        static = analyze(code, language)
        tests = build = None
        tested_as = None
        if cases and item.teacher_code is not None:
            reference = analyze(extract_code(item.teacher_code, language), language).implemented
            prompt = str(item.row.get("prompt", ""))
            cases, tested_as = in_student_names(cases, language, prompt, reference, static.implemented, code)
        if not code.strip():  # nothing to run or judge
            if cases:
                tests = TestOutcome(0, len(cases), reason="empty answer")
            else:
                build = TestOutcome(0, 0, reason="empty answer", compiled=False)
            return _Evaluation(static, tests, build, None, item.row.get("entry_point"))
        if cases:
            if language in LANGUAGES:
                tests = run_tests(
                    self.sandbox,
                    self.tools,
                    language,
                    code,
                    cases,
                    item.row.get("entry_point"),
                    self.limits,
                    self.compile_limits,
                )
            else:
                tests = TestOutcome(0, len(cases), reason=f"no test runner for {language}", missing=language)
        elif language in LANGUAGES:
            build = build_check(self.sandbox, self.tools, language, code, self.limits, self.compile_limits)
        verdict = None
        if self.judge is not None:
            try:
                verdict = self.judge.judge(str(item.row.get("prompt", "")), code, language)
            except Exception as exc:  # a judge bug must not lose the measured scores
                verdict = JudgeVerdict.unavailable(f"judge failed: {type(exc).__name__}: {exc}")
        return _Evaluation(static, tests, build, verdict, item.row.get("entry_point"), tested_as)

    def _assemble(self, students: list[Future], teacher: Future | None) -> ScoreResult:
        teacher_eval = teacher.result() if teacher is not None else None
        student_scores = [self._criteria(f.result(), teacher_eval) for f in students]
        teacher_score = self._criteria(teacher_eval, teacher_eval) if teacher_eval else None
        teacher_value = teacher_score.score if teacher_score else None

        def reward(score: float | None) -> float | None:
            if score is None:
                return None
            return compute_reward(score, teacher_value, self.settings.reward_floor, self.settings.reward_cap)

        isolation = self._sandbox.isolation if self._sandbox is not None else None
        return ScoreResult(
            student_scores,
            teacher_score,
            [reward(s.score) for s in student_scores],
            reward(teacher_value),
            self.settings.weights.model_dump(),
            isolation,
        )

    def _criteria(self, ev: _Evaluation, reference: _Evaluation | None) -> CodeScore:
        values: dict[str, float] = {}
        sources: dict[str, str] = {}
        tests: dict[str, Any] = {}
        notes = list(ev.static.notes)
        judged = ev.verdict.get if ev.verdict else (lambda _criterion: None)
        if ev.verdict and ev.verdict.fallback:
            notes.append(f"judge: {ev.verdict.fallback}")

        outcome = ev.tests or ev.build
        values["correctness"], sources["correctness"], why = self._correctness(ev, judged)
        if why:
            notes.insert(0, why)
        if ev.tested_as:
            notes.insert(0, ev.tested_as)
        if ev.tests is not None:
            tests.update(passed=ev.tests.passed, total=ev.tests.total)
            if ev.tests.cpu is not None:
                tests["cpu_s"] = round(ev.tests.cpu, 3)
            if ev.tests.missing is None:
                # Where the verdicts were decided: outside the program's reach (on plain data), or
                # by its own code for some cases (weaker: see rubric.INSIDE_SHARE).
                sources["verdicts"] = "outside" if not ev.tests.inside else "inside"
                if ev.tests.inside:
                    tests.update(decided_inside=ev.tests.inside, passed_inside=ev.tests.passed_inside)
        else:
            tests.update(passed=0, total=0)
        if outcome is not None and outcome.reason:
            tests["reason"] = outcome.reason

        # code quality: static analysis (python) or compiler warnings (c++/rust), blended with the judge
        quality, quality_source = self._quality(ev)
        values["code_quality"] = blend(quality, judged("code_quality"), self.settings.judge_weight)
        sources["code_quality"] = quality_source + ("+judge" if judged("code_quality") is not None else "")

        # efficiency: run time against the reference's on the same tests when both pass them all,
        # else the static estimate (which the gate zeroes for code that fails a test)
        if (
            ev.tests is not None
            and reference is not None
            and reference.tests is not None
            and ev.tests.all_passed
            and reference.tests.all_passed
            and ev.tests.cpu is not None
            and reference.tests.cpu is not None
        ):
            values["efficiency"], sources["efficiency"] = timing_efficiency(ev.tests.cpu, reference.tests.cpu), "tests"
        else:
            values["efficiency"], sources["efficiency"] = ev.static.efficiency, "static"

        values["documentation"] = blend(ev.static.documentation, judged("documentation"), self.settings.judge_weight)
        sources["documentation"] = "static" + ("+judge" if judged("documentation") is not None else "")

        all_passed = ev.tests is not None and ev.tests.all_passed and not ev.tests.passed_inside
        gate = correctness_gate(values["correctness"], sources["correctness"], all_passed)
        if gate < 1:
            notes.append(
                f"quality, efficiency and documentation scaled by {gate:.2f}: "
                + (
                    (
                        "code that fails a test earns correctness only"
                        if not ev.tests.all_passed
                        else "a pass decided inside the box earns correctness only"
                    )
                    if sources["correctness"] == "tests"
                    else f"correctness is {sources['correctness']}"
                )
            )
        for name in GATED:
            values[name] *= gate
        breakdown = {name: round(clamp(values[name]), 4) for name in CRITERIA}
        if notes:
            tests["notes"] = notes[:MAX_NOTES]
        return CodeScore(
            weighted_score(breakdown, self.settings.weights.model_dump()),
            breakdown,
            {name: sources[name] for name in (*CRITERIA, "verdicts") if name in sources},
            tests,
        )

    @staticmethod
    def _correctness(ev: _Evaluation, judged) -> tuple[float, str, str | None]:
        """(value, source, a note saying why when it is not from tests)."""
        if ev.tests is not None and ev.tests.missing is None:
            return tests_correctness(ev.tests.passed, ev.tests.passed_inside, ev.tests.total), "tests", None
        build = ev.build
        builds = ev.static.parses and (build is None or build.compiled) and (build is None or build.missing is None)
        if judged("correctness") is not None:
            return (
                (judged("correctness") if builds else 0.0),
                "judge",
                None if builds else "does not build: judge ignored",
            )
        if ev.tests is not None or (build is not None and build.missing is not None):
            return 0.0, "unassessed", "correctness unassessed: " + (ev.tests or build).reason
        if build is None:  # a language rfai can neither run nor compile
            return 0.0, "unassessed", "correctness unassessed: no runner or compiler for this language"
        if not builds:
            return 0.0, "measured", "no tests, no judge: does not build"
        defines = ev.entry_point in ev.static.implemented if ev.entry_point else bool(ev.static.implemented)
        why = (
            "no tests, no judge: correctness measured (builds"
            + (", defines " + (f"'{ev.entry_point}'" if ev.entry_point else "a callable") if defines else "")
            + f"), capped at {MEASURED_CAP}"
        )
        return MEASURED_BUILDS + (MEASURED_DEFINES if defines else 0.0), "measured", why

    @staticmethod
    def _quality(ev: _Evaluation) -> tuple[float, str]:
        if ev.static.quality is not None:
            return ev.static.quality, "static"
        build = ev.tests or ev.build
        if build is None or build.missing is not None:
            return 0.0, "unassessed"  # no compiler to ask
        if not build.compiled:
            return 0.0, "static"
        return clamp(1.0 - WARNING_PENALTY * (build.warnings or 0)), "static"

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self._sandbox is not None:
            self._sandbox.close()

    def __enter__(self) -> "Scorer":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
