"""The rollout seam through real parts: a tiny random MLX model, the reference teacher, the sandbox."""

from __future__ import annotations

from rfai_cli.config import load_config
from rfai_cli.data.prompts import load_prompts
from rfai_cli.engine.loading import load_model
from rfai_cli.rollout import open_rollout


def test_one_already_loaded_model_samples_and_scores_a_batch(tmp_path, tiny_model_dir):
    config = load_config(
        None,
        {
            "model.base_model": str(tiny_model_dir),
            "training.max_new_tokens": 8,
            "teacher.cache_dir": str(tmp_path / "cache"),
        },
    )
    tasks = load_prompts("builtin", "train", 2)
    student = load_model(str(tiny_model_dir))
    batch = [(tasks[0], [0, 1]), (tasks[1], [3])]
    with open_rollout(config, student=student, tasks=tasks) as rollout:
        assert rollout.student is student  # train passes its own (LoRA) model: nothing reloads it
        sampled = rollout.sample(batch)
        assert [len(group) for group in sampled.samples] == [2, 1]
        for sample in (s for group in sampled.samples for s in group):
            assert sample.token_ids and len(sample.logprobs) == len(sample.token_ids)
            assert all(value <= 0 for value in sample.logprobs)
        assert [ref.model for ref in sampled.references] == ["reference", "reference"]
        scored = rollout.score(sampled, {"split": "train", "student_model": "s", "teacher_model": "t", "run_id": "r"})
    assert [(row["task_id"], row["sample_index"]) for row in scored.rows] == [
        (tasks[0].task_id, 0),
        (tasks[0].task_id, 1),
        (tasks[1].task_id, 3),
    ]
    assert all(row["teacher_score"] == 1.0 and row["teacher_model"] == "reference" for row in scored.rows)
    assert len(scored.results) == 2 and scored.results[0].teacher is not None
