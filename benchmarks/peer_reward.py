"""rfai's reward for the peer legs of train_step.py: the scorer, tasks and reference solutions of `rfai train`.

mlx-lm-lora runs in rfai's environment and calls `Reward` in process. TRL runs in a torch
environment without rfai, so it starts this file as a server (`python peer_reward.py TASKS`):
each line on stdin is {"task_ids": [...], "completions": [...]}, each answer on stdout the list
of rewards, and the seconds spent scoring are on the last line when stdin closes.
"""

from __future__ import annotations

import json
import sys
import time

from rfai_cli.config import load_config
from rfai_cli.data.prompts import load_prompts
from rfai_cli.rollout import build_scorer, task_row
from rfai_cli.scoring import ScoreItem
from rfai_cli.teachers import build_teacher


def train_tasks(count: int) -> list:
    """The first `count` built-in train tasks, the ones the rfai leg trains on."""
    return load_prompts("builtin", "train")[:count]


class Reward:
    """Each completion's reward for its task, as `rfai train` computes it (the built-in tasks have
    reference solutions, so the teacher's answer is the reference whatever the provider)."""

    def __init__(self, tasks: list, student=None) -> None:
        config = load_config(None, {} if student is not None else {"teacher.provider": "reference"})
        teacher = build_teacher(config, student)
        self.tasks = {task.task_id: task for task in tasks}
        answers = teacher.references([(t.prompt, t.language, t.canonical_solution) for t in tasks])
        self.references = {task.task_id: answer.code or None for task, answer in zip(tasks, answers)}
        self.scorer = build_scorer(config, teacher)
        self.seconds = 0.0

    def __call__(self, task_ids: list[str], completions: list[str]) -> list[float]:
        started = time.perf_counter()
        items = [
            ScoreItem(task_row(self.tasks[task_id]), [completion], self.references[task_id])
            for task_id, completion in zip(task_ids, completions)
        ]
        results = self.scorer.score_many(items)
        self.seconds += time.perf_counter() - started
        return [float(result.rewards[0] or 0.0) for result in results]

    def __enter__(self) -> "Reward":
        self.scorer.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.scorer.__exit__(*exc)


def serve(count: int) -> None:
    with Reward(train_tasks(count)) as reward:
        for line in sys.stdin:
            request = json.loads(line)
            print(json.dumps(reward(request["task_ids"], request["completions"])), flush=True)
        print(json.dumps({"score_seconds": reward.seconds}), flush=True)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
