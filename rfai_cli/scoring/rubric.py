"""The rubric's arithmetic: weighted score, reward, and the bucketed timing efficiency."""

from __future__ import annotations

from typing import Mapping

CRITERIA = ("correctness", "code_quality", "efficiency", "documentation")
# Below this many CPU seconds, run times are timer noise: both count as equally fast.
TIMING_NOISE_S = 0.05
# (largest student/teacher CPU-time ratio, efficiency) in order; slower than the last is 0.25.
TIMING_BUCKETS = ((1.5, 1.0), (3.0, 0.75), (10.0, 0.5))


def weighted_score(breakdown: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """score = sum(weight * criterion), rounded so equal inputs give byte-equal rows."""
    return round(sum(weights[name] * breakdown[name] for name in CRITERIA), 4)


def compute_reward(student_score: float, teacher_score: float, floor: float = 0.05, cap: float = 2.0) -> float:
    """reward = min(cap, student / max(teacher, floor)), to 3 decimals (0.85, 0.92 -> 0.924)."""
    return round(min(cap, student_score / max(teacher_score, floor)), 3)


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
