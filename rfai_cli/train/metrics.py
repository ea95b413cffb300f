"""A step's metrics: what each rank measured (`local_facts`), gathered into one record on rank 0
(`step_record`), and `metrics.jsonl`, the log of every step's record (`MetricsLog`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..records import TEACHER, JsonlWriter, read_rows
from ..scoring.rubric import trains_on
from .grpo import zero_variance_fraction
from .guidance import guidance_metrics

METRICS_FILE = "metrics.jsonl"


def local_facts(batch, old: list) -> dict:
    """This rank's share of a step (batch.StepBatch and the old log-probs per sequence), as plain
    data every rank sends to rank 0. Lengths, tests and the log-prob gap are the students'."""
    import mlx.core as mx

    students = [i for i, teacher in enumerate(batch.teacher) if not teacher]
    return {
        "student_rewards": [batch.rows[i]["reward"] for i in students],
        "groups": batch.rewards,
        "guidance": guidance_metrics(batch.rewards, batch.joined),
        "lengths": [len(batch.token_ids[i]) for i in students],
        "truncated": [batch.truncated[i] for i in students],
        "gap": _logprob_gap([batch.sampled_logprobs[i] for i in students], [old[i] for i in students]),
        "tests": [(batch.rows[i].get("test_results") or {}).get("student") for i in students],
        "breakdowns": [batch.rows[i].get("student_breakdown") or {} for i in students],
        "peak_gib": mx.get_peak_memory() / 2**30,
    }


def step_record(facts: list[dict], update: dict, context: dict, seconds: dict) -> dict:
    """One step's record from every rank's `local_facts`, the update's metrics (summed over
    ranks already), `context` (step, epoch, kl_beta, learning_rate) and the phases' seconds."""
    groups = [group for part in facts for group in part["groups"]]
    rewarded = [r for part in facts for r in part["student_rewards"] if r is not None]
    lengths = [n for part in facts for n in part["lengths"]]
    guidance = {key: sum(part["guidance"][key] for part in facts) for key in facts[0]["guidance"]}
    trained = [group for group in groups if trains_on(group)]
    criteria = _criterion_means([b for part in facts for b in part["breakdowns"]])
    return {
        "step": context["step"],
        "epoch": context["epoch"],
        "reward_mean": float(np.mean(rewarded)) if rewarded else None,
        "reward_std": float(np.std(rewarded)) if rewarded else None,
        "pass_rate": _pass_rate([t for part in facts for t in part["tests"]]),
        "zero_variance_fraction": zero_variance_fraction(trained),
        "unrewarded_fraction": 1 - len(trained) / len(groups),
        "teacher_joined_fraction": guidance["teacher_joined"] / guidance["groups"],
        "teacher_best_fraction": guidance["teacher_best"] / guidance["teacher_joined"]
        if guidance["teacher_joined"]
        else None,
        **{f"{name}_mean": value for name, value in criteria.items()},
        "completion_tokens_mean": float(np.mean(lengths)),
        "completion_tokens_max": max(lengths),
        "truncated_fraction": float(np.mean([t for part in facts for t in part["truncated"]])),
        "sampling_logprob_gap": float(np.mean([part["gap"] for part in facts])),
        **update,
        "kl_beta": context["kl_beta"],
        "learning_rate": context["learning_rate"],
        "seconds_generate": round(seconds["generate"], 3),
        "seconds_score": round(seconds["score"], 3),
        "seconds_train": round(seconds["train"], 3),
        "generated_tokens_per_second": round(sum(lengths) / max(seconds["generate"], 1e-9), 1),
        "peak_memory_gib": round(max(part["peak_gib"] for part in facts), 3),  # MLX's, the largest rank's
    }


class MetricsLog:
    """`checkpoint_dir/metrics.jsonl`: one record per step, appended whole (JsonlWriter), read
    past a torn last line, and cut back to a checkpoint's step on resume."""

    def __init__(self, directory: Path):
        self.path = directory / METRICS_FILE

    def append(self, record: dict) -> None:
        with JsonlWriter(self.path) as writer:  # a full disk: the step is redone on resume
            writer.write(record)

    def read(self) -> list[dict]:
        return list(read_rows(self.path, on_skip=lambda _skip: None)) if self.path.exists() else []

    def cut(self, step: int) -> None:
        """Keep the records up to `step` (those the checkpoint being resumed holds)."""
        from ..output import write_text

        if self.path.exists():
            kept = [record for record in self.read() if record.get("step", 0) <= step]
            write_text(self.path, "".join(json.dumps(record) + "\n" for record in kept))

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def completion_samples(rows: list[dict], n: int) -> list[dict]:
    """`n` of a step's student rows, spread over its groups: what a person reads to see what the
    model writes (TRL's completions table). Whole prompt and code; each sink cuts what it shows."""
    students = [row for row in rows if row.get("sample_source") != TEACHER]
    picked = [students[i * len(students) // n] for i in range(min(n, len(students)))] if n else []
    return [
        {
            "task_id": row.get("task_id"),
            "prompt": row.get("prompt") or "",
            "code": row.get("student_code") or "",
            "reward": row.get("reward"),
            "tests": (row.get("test_results") or {}).get("student"),
        }
        for row in picked
    ]


def _criterion_means(breakdowns: list[dict]) -> dict[str, float]:
    """The mean of each rubric criterion's student score over the step's samples."""
    names = sorted({name for b in breakdowns for name, v in b.items() if isinstance(v, (int, float))})
    return {
        name: float(np.mean([b[name] for b in breakdowns if isinstance(b.get(name), (int, float))])) for name in names
    }


def _pass_rate(tests: list[dict | None]) -> float | None:
    """The share of test cases passed, over the samples' `test_results.student` that ran any."""
    tested = [t for t in tests if t and t.get("total")]
    return sum(t["passed"] for t in tested) / sum(t["total"] for t in tested) if tested else None


def _logprob_gap(sampled: list[list[float]], old_rows) -> float:
    """Mean |engine sampling log-prob - recomputed log-prob| per token: 0 up to float noise when
    the sampling and training distributions are the same (temperature 1, no truncation)."""
    gaps = np.concatenate([np.abs(np.array(s) - old) for s, old in zip(sampled, old_rows)] or [np.zeros(0)])
    return float(gaps.mean()) if gaps.size else 0.0
