"""Sandboxed execution, static metrics, the judge protocol, scores and rewards.

Public API (what collect/train/score use):
    Scorer(settings, judge=None).score_many(items) -> list[ScoreResult]
    ScoreItem(row, student_code=[...], teacher_code=...)
    fill_record(record, result, index)     # the score fields of one answer's row
    fill_teacher_sample(record, result)    # ... of the teacher's answer as a sample of its group
    extract_code(answer, language)         # the code inside a model's answer
    Judge / JudgeVerdict                   # what a teacher judge implements
    compute_reward(student, teacher, floor, cap)
"""

from .extract import extract_code
from .judge import Judge, JudgeVerdict
from .rubric import CRITERIA, compute_reward
from .scorer import CodeScore, ScoreItem, Scorer, ScoreResult, fill_record, fill_teacher_sample, test_cases

__all__ = [
    "CRITERIA",
    "CodeScore",
    "Judge",
    "JudgeVerdict",
    "ScoreItem",
    "ScoreResult",
    "Scorer",
    "compute_reward",
    "extract_code",
    "fill_record",
    "fill_teacher_sample",
    "test_cases",
]
