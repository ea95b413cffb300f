"""The teacher judge, as the scorer sees it: a protocol any judge implements, and its verdict.

A judge rates one piece of code on some rubric criteria (0..1 each). It is used for
correctness only when the task has no tests, and is blended into code_quality and
documentation with `scoring.judge_weight`. A judge that cannot answer returns
`JudgeVerdict.unavailable(reason)`; the scorer then keeps its own measurement and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol, runtime_checkable


@dataclass(frozen=True)
class JudgeVerdict:
    scores: Mapping[str, float] = field(default_factory=dict)  # criterion -> 0..1
    fallback: str | None = None  # why there is no verdict (then `scores` is ignored)

    @classmethod
    def unavailable(cls, reason: str) -> "JudgeVerdict":
        return cls({}, reason)

    def get(self, criterion: str) -> float | None:
        """The judged value for `criterion`, clamped to 0..1, or None when not judged."""
        if self.fallback is not None or criterion not in self.scores:
            return None
        value = self.scores[criterion]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
            return None
        return max(0.0, min(1.0, float(value)))


@runtime_checkable
class Judge(Protocol):
    def judge(self, prompt: str, code: str, language: str) -> JudgeVerdict:
        """Rate `code` written for `prompt` in `language`; never raise for a bad answer, return
        `JudgeVerdict.unavailable(reason)` instead."""
        ...
