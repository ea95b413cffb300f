"""One step's trained batch: each group's student samples, then its teacher sample when the teacher
joins (guidance.py), with their rows, rewards and advantages in that one order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..scoring.rubric import trains_on
from .grpo import group_advantages
from .guidance import TeacherSample, teacher_samples


@dataclass
class StepBatch:
    rows: list[dict] = field(default_factory=list)
    prompt_ids: list[list[int]] = field(default_factory=list)
    token_ids: list[list[int]] = field(default_factory=list)
    truncated: list[bool] = field(default_factory=list)  # the sample ran out of max_new_tokens
    teacher: list[bool] = field(default_factory=list)  # the sequence is a teacher sample
    sampled_logprobs: list[list[float] | None] = field(default_factory=list)  # None for teacher samples
    rewards: list[list[float | None]] = field(default_factory=list)  # per group, in sequence order
    advantages: list[float] = field(default_factory=list)
    joined: list[TeacherSample] = field(default_factory=list)

    def add(self, row: dict, prompt_ids, token_ids, truncated: bool, logprobs: list[float] | None) -> None:
        self.rows.append(row)
        self.prompt_ids.append(prompt_ids)
        self.token_ids.append(token_ids)
        self.truncated.append(truncated)
        self.teacher.append(logprobs is None)
        self.sampled_logprobs.append(logprobs)

    @property
    def trained_rewards(self) -> list[list[float]]:
        """The rewards of the groups that are trained on (rubric.trains_on)."""
        return [group for group in self.rewards if trains_on(group)]


def step_batch(scored: Any, tokenizer: Any, training: Any) -> StepBatch:
    """The batch of a scored rollout (rollout.ScoredBatch) with advantages normalised per
    `training.scale_rewards`; a group without rewards gets advantage 0 (rubric.py)."""
    batch = StepBatch()
    batch.joined = teacher_samples(scored, tokenizer, training.teacher_in_group, training.max_new_tokens)
    guides = {sample.group: sample for sample in batch.joined}
    rows = iter(scored.rows)
    for k, (samples, rewards) in enumerate(zip(scored.sampled.samples, scored.rewards)):
        for sample in samples:
            batch.add(
                next(rows), sample.prompt_ids, sample.token_ids, sample.finish_reason == "length", sample.logprobs
            )
        if k in guides:
            guide = guides[k]
            batch.add(guide.row, guide.prompt_ids, guide.token_ids, False, None)
            rewards = [*rewards, guide.reward]
        batch.rewards.append(rewards)
    normalised = iter(group_advantages(batch.trained_rewards, training.scale_rewards))
    for group in batch.rewards:
        batch.advantages += next(normalised) if trains_on(group) else [0.0] * len(group)
    return batch
