"""`rfai score` without the CLI: (re)score the rows of a JSONL file that already hold code.

Rows stream through in batches (so programs run concurrently) and come out in input order.
A line that is not a record is reported and dropped; a row that cannot be scored (no
`student_code`, malformed `tests`) is reported and written through unchanged, so nothing
the input held is lost. A file output is written to a temporary file and renamed at the end,
so the output may be the input itself and an interrupted run leaves the old file intact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import InputError
from ..output import open_output
from ..records import JsonlWriter, Skip, display_name, iter_lines, parse_line
from .scorer import ScoreItem, Scorer, fill_record


@dataclass
class RescoreSummary:
    rows_written: int = 0
    scored: int = 0
    problems: list[str] = field(default_factory=list)  # "file:line: reason" for every line not scored
    student_score_sum: float = 0.0
    reward_sum: float = 0.0
    rewards: int = 0

    def as_dict(self) -> dict:
        return {
            "rows_written": self.rows_written,
            "scored": self.scored,
            "not_scored": len(self.problems),
            "mean_student_score": round(self.student_score_sum / self.scored, 4) if self.scored else None,
            "mean_reward": round(self.reward_sum / self.rewards, 4) if self.rewards else None,
            "problems": self.problems,
        }


def rescore(
    source: str | Path,
    output: str | Path,
    scorer: Scorer,
    *,
    strict: bool = False,
    on_problem: Callable[[str], None] | None = None,
    on_batch: Callable[[RescoreSummary], None] | None = None,
) -> RescoreSummary:
    summary = RescoreSummary()
    name = display_name(source)
    batch_size = scorer.workers * 8

    def problem(line: int, reason: str) -> None:
        text = str(Skip(name, line, reason))
        if strict:
            raise InputError(text)
        summary.problems.append(text)
        if on_problem:
            on_problem(text)

    with open_output(output) as stream, JsonlWriter(stream=stream) as writer:
        batch: list[tuple[dict, ScoreItem | None]] = []
        for number, line in iter_lines(source):
            row, reason = parse_line(line)
            if row is None:
                problem(number, reason)
                continue
            try:
                item = ScoreItem.from_record(row)
            except ValueError as exc:
                problem(number, f"not scored: {exc}")
                item = None
            batch.append((row, item))
            if len(batch) >= batch_size:
                _flush(batch, scorer, writer, summary, on_batch)
        _flush(batch, scorer, writer, summary, on_batch)
    return summary


def _flush(batch: list, scorer: Scorer, writer: JsonlWriter, summary: RescoreSummary, on_batch) -> None:
    items = [item for _, item in batch if item is not None]
    results = iter(scorer.score_many(items))
    for row, item in batch:
        if item is not None:
            fill_record(row, next(results))
            summary.scored += 1
            summary.student_score_sum += row["student_score"]
            if row["reward"] is not None:
                summary.reward_sum += row["reward"]
                summary.rewards += 1
    writer.write_many(row for row, _ in batch)
    summary.rows_written += len(batch)
    batch.clear()
    if on_batch:
        on_batch(summary)
