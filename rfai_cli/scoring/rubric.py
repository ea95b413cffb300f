"""The rubric's arithmetic: the correctness gate, weighted score, reward, and the bucketed timing efficiency.

How a program's correctness is known, and how much the other criteria may then count (the gate):

| correctness source | correctness | gate on quality, efficiency, documentation |
|---|---|---|
| tests        | (passed outside + INSIDE_SHARE x passed inside) / total | 1 when every test passes outside, else 0 |
| judge        | the judge's rating (0 if the code does not build) | the correctness itself |
| measured     | at most MEASURED_CAP: builds/runs, defines the entry point (or some non-stub callable) | the correctness itself |
| unassessed   | 0 (no runner or compiler for the tests, nothing else to go on) | 0 |

So code that fails a test earns correctness only, and is never worth more than code passing one
more test; code nobody could test scores at most MEASURED_CAP. A case whose verdict the program's
own code decided (inside the box: a C++ test with its own `main`, an assert rfai could not split,
a Python case that needs the program's object to compare) is weaker evidence: its pass earns
INSIDE_SHARE of a case, so no trick that fools such a verdict reaches half of correctness.

A missing teacher score (the teacher gave no answer that could be scored: no model, an error, a
degenerate answer) leaves the reward missing too: `compute_reward` returns None and the row's
`reward` is null. No one invents a stand-in. `collect` and `stats` leave such rows out of reward
figures and count them; `train` does not train on such a group (`trains_on`): its samples get
advantage 0, as a group with no reward variance does, and the step reports the share of such groups.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from ..config import RubricWeights

CRITERIA: tuple[str, ...] = tuple(RubricWeights.model_fields)  # one definition: the config's weights
GATED = ("code_quality", "efficiency", "documentation")  # worth something only for code that works
CORRECTNESS_SOURCES = ("tests", "judge", "measured", "unassessed")
MEASURED_CAP = 0.5
MEASURED_BUILDS = 0.2  # python: parses and runs to its end as a module; c++/rust: compiles
MEASURED_DEFINES = MEASURED_CAP - MEASURED_BUILDS  # ...and defines the entry point (or a non-stub callable)
INSIDE_SHARE = 0.25  # what a pass decided inside the box is worth, against 1 for one decided outside
# Below this many CPU seconds, run times are timer noise: both count as equally fast.
TIMING_NOISE_S = 0.05
# (largest student/teacher CPU-time ratio, efficiency) in order; slower than the last is 0.25.
TIMING_BUCKETS = ((1.5, 1.0), (3.0, 0.75), (10.0, 0.5))


def tests_correctness(passed: int, passed_inside: int, total: int) -> float:
    """Correctness from test cases: a pass decided inside the box earns INSIDE_SHARE of one."""
    return (passed - (1 - INSIDE_SHARE) * passed_inside) / total


def correctness_gate(correctness: float, source: str, all_tests_passed: bool) -> float:
    """The factor on the gated criteria (see the table above); `all_tests_passed` means every
    case passed with its verdict decided outside."""
    if source == "tests":
        return 1.0 if all_tests_passed else 0.0
    if source == "unassessed":
        return 0.0
    return correctness


def weighted_score(breakdown: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """score = sum(weight * criterion), rounded so equal inputs give byte-equal rows."""
    return round(sum(weights[name] * breakdown[name] for name in CRITERIA), 4)


def compute_reward(
    student_score: float, teacher_score: float | None, floor: float = 0.05, cap: float = 2.0
) -> float | None:
    """reward = min(cap, student / max(teacher, floor)), to 3 decimals (0.85, 0.92 -> 0.924);
    None without a teacher score (see the module docstring)."""
    if teacher_score is None:
        return None
    return round(min(cap, student_score / max(teacher_score, floor)), 3)


def trains_on(rewards: Sequence[float | None]) -> bool:
    """Whether a group's rewards can be trained on: every sample has one (see the module docstring)."""
    return bool(rewards) and all(reward is not None for reward in rewards)


def timing_efficiency(student_cpu: float, teacher_cpu: float) -> float:
    """Efficiency from the student's test-run CPU time relative to the teacher's, in coarse
    buckets so that run-to-run noise does not change the score."""
    ratio = max(student_cpu, TIMING_NOISE_S) / max(teacher_cpu, TIMING_NOISE_S)
    for bound, value in TIMING_BUCKETS:
        if ratio <= bound:
            return value
    return 0.25


def blend(measured: float, judged: float | None, judge_weight: float) -> float:
    if judged is None:
        return measured
    return (1 - judge_weight) * measured + judge_weight * judged
