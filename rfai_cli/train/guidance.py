"""The teacher in the group: mixed-policy GRPO, so that the teacher's answer reaches the gradient.

With one teacher score per prompt, `student / teacher` divides a whole group by one number, and
group normalisation takes it out again: the teacher would change nothing. Instead the teacher's
reference, written as the student is asked to answer (the same chat prompt, one fenced code
block), joins its prompt's group as one more, off-policy sample. The same scorer scores it, the
same rule rewards it (teacher / teacher: 1 when the teacher scores above the reward floor), and
it is normalised with the students. A group in which every student fails and the teacher passes
no longer has zero variance: the teacher's sample gets a positive advantage, the students' a
negative one.

`training.teacher_in_group` says which groups it joins:

    never    plain GRPO: no teacher sample
    failing  groups where no student scores as well as the teacher
    always   every group whose teacher gave code

An answer longer than `max_new_tokens` tokens never joins: the student could not have written it.

The off-policy sample's tokens enter the loss with LUFFY's policy shaping (Yan et al. 2025,
"Learning to Reason under Off-Policy Guidance"): the importance ratio pi_theta / pi_teacher,
with pi_teacher taken as 1, becomes f(p) = p / (p + gamma), unclipped (grpo.py). f is bounded
by 1, so the weight cannot explode; its gradient p * gamma / (p + gamma)^2 is largest for
tokens the student finds unlikely, which keeps it from sharpening onto tokens it already
prefers (the entropy collapse LUFFY measured with a plain ratio). The KL term and the clip
metrics cover the student's own samples only: the k3 estimator needs samples of the policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class TeacherSample:
    """The teacher's answer to task `group` as a sample of that group, with its dataset row."""

    group: int
    prompt_ids: list[int]
    token_ids: list[int]
    row: dict

    @property
    def reward(self) -> float:
        return self.row["reward"]


def answer_text(language: str, code: str) -> str:
    """The teacher's code written as the student is asked to answer: one fenced code block."""
    return f"```{language}\n{code.strip()}\n```"


def answer_ids(tokenizer: Any, language: str, code: str) -> list[int]:
    return tokenizer.encode(answer_text(language, code), add_special_tokens=False)


def joins(mode: str, student_scores: Sequence[float], teacher_score: float | None) -> bool:
    """Whether the teacher's answer joins a group whose students scored `student_scores`."""
    if mode == "never" or teacher_score is None:
        return False
    return mode == "always" or max(student_scores) < teacher_score


def teacher_samples(scored: Any, tokenizer: Any, mode: str, max_new_tokens: int) -> list[TeacherSample]:
    """The teacher samples of a scored batch (rollout.ScoredBatch), one per group it joins."""
    joined = []
    for k, ((task, _), samples, reference, result) in enumerate(
        zip(scored.sampled.batch, scored.sampled.samples, scored.sampled.references, scored.results)
    ):
        teacher = result.teacher
        if not (samples and reference.code.strip() and result.teacher_reward is not None):
            continue
        if not joins(mode, [s.score for s in result.students], teacher.score):
            continue
        tokens = answer_ids(tokenizer, task.language, reference.code)
        if len(tokens) > max_new_tokens:
            continue
        joined.append(TeacherSample(k, samples[0].prompt_ids, tokens, scored.teacher_row(k)))
    return joined


def guidance_metrics(rewards: Sequence[Sequence[float]], joined: Sequence[TeacherSample]) -> dict:
    """Per step: the share of groups the teacher joined, and of those, how often its sample had
    the group's best reward (ties count)."""
    best = sum(1 for t in joined if t.reward >= max(rewards[t.group], default=0.0))
    return {"teacher_joined": len(joined), "teacher_best": best, "groups": len(rewards)}
