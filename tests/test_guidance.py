"""The teacher in the group (train/guidance.py): its sample reaches the gradient with a bounded weight,
`never` leaves the update exactly as it was, and a run writes, resumes and reports teacher samples.
The rule for a missing teacher score (scoring/rubric.py) in collect and train."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_train import TRAINING, config_text, killed_and_resumed, lora_model, rows

import rfai_cli.engine  # noqa: F401  (preloads OpenBLAS before mlx is imported)
from rfai_cli.engine.logprobs import frozen_hidden, padded_completion_logprobs, token_batch
from rfai_cli.scoring.rubric import compute_reward, trains_on
from rfai_cli.train.grpo import LossSettings, clipped_loss, group_advantages, normaliser
from rfai_cli.train.guidance import joins
from rfai_cli.train.update import update_policy

# Prompts whose reference solutions fit in a few tokens of the tiny model, so they can join groups.
SHORT_TASKS = [
    {
        "task_id": f"short/{name}",
        "language": "python",
        "entry_point": name,
        "prompt": f"Write a Python function `{name}()` that returns {value}.",
        "tests": [f"assert {name}() == {value}"],
        "canonical_solution": f"def {name}():\n    return {value}\n",
    }
    for name, value in (("one", 1), ("two", 2), ("three", 3), ("four", 4))
]


def short_tasks_file(directory: Path) -> Path:
    path = directory / "short.jsonl"
    path.write_text("".join(json.dumps(task) + "\n" for task in SHORT_TASKS))
    return path


def guided_config(tiny_model_dir: Path, directory: Path, steps: int, mode: str = "always") -> str:
    extra = f"  teacher_in_group: {mode}\n  epochs: 10\ndata:\n  train_prompts: {short_tasks_file(directory)}"
    text = config_text(tiny_model_dir, steps, extra)
    return text.replace("max_new_tokens: 8", "max_new_tokens: 16")


def seeded_lora_model(tiny_model_dir):
    """The same adapters every time (attach_lora draws lora_a at random)."""
    import mlx.core as mx

    mx.random.seed(0)
    return lora_model(tiny_model_dir)


def adapters(model) -> dict:
    from mlx.utils import tree_flatten

    return {k: np.array(v) for k, v in tree_flatten(model.trainable_parameters())}


def update(model, prompts, completions, advantages, teacher=None, settings=LossSettings(kl_beta=0.04)):
    import mlx.core as mx
    import mlx.optimizers as optim

    batch = token_batch(prompts, completions)
    weights, scale = normaliser([batch.mask], settings)
    metrics, _ = update_policy(
        model,
        optim.AdamW(learning_rate=0.01, weight_decay=0.0),
        settings,
        TRAINING,
        batch,
        frozen_hidden(model, batch),
        mx.array(advantages),
        weights,
        scale,
        teacher=None if teacher is None else mx.array(teacher),
    )
    return metrics


def test_which_groups_the_teacher_joins():
    assert not joins("never", [0.0, 0.0], 1.0)
    assert joins("failing", [0.0, 0.3], 1.0) and not joins("failing", [0.0, 1.0], 1.0)
    assert joins("always", [0.0, 1.0], 1.0)
    assert not joins("always", [0.0], None)  # no teacher score: nothing to join with


def test_a_teacher_sample_with_a_positive_advantage_raises_its_log_prob(tiny_model_dir):
    model = lora_model(tiny_model_dir)
    prompts, completions = [[1, 2, 3]] * 3, [[5, 6, 7], [9, 10, 11], [20, 21, 22, 23]]
    advantages = [a for group in group_advantages([[0.0, 0.0, 1.0]]) for a in group]  # two fail, the teacher passes
    before, _ = padded_completion_logprobs(model, prompts, completions)
    metrics = update(model, prompts, completions, advantages, teacher=[0.0, 0.0, 1.0])
    after, _ = padded_completion_logprobs(model, prompts, completions)
    assert not metrics["skipped"] and metrics["grad_norm"] > 0
    assert float(after[2].sum()) > float(before[2].sum())  # the teacher's answer became likelier
    assert float(after[0].sum()) < float(before[0].sum())


def test_without_a_teacher_sample_the_update_is_exactly_plain_grpo(tiny_model_dir):
    """`never` changes nothing: the teacher code path with no teacher row gives the same update,
    bit for bit, as the path without it."""
    prompts, completions = [[1, 2, 3]] * 2 + [[4, 5]] * 2, [[5, 6, 7], [9, 10], [11, 12, 13], [15]]
    advantages = [1.0, -1.0, 0.5, -0.5]
    plain, marked = seeded_lora_model(tiny_model_dir), seeded_lora_model(tiny_model_dir)
    first = update(plain, prompts, completions, advantages)
    second = update(marked, prompts, completions, advantages, teacher=[0.0] * 4)
    assert first == second
    ours, theirs = adapters(plain), adapters(marked)
    assert all(np.array_equal(ours[k], theirs[k]) for k in ours)
    # ... and a teacher row does change it: the test can fail
    guided = seeded_lora_model(tiny_model_dir)
    update(guided, prompts, completions, advantages, teacher=[0.0, 1.0, 0.0, 0.0])
    assert not all(np.array_equal(ours[k], v) for k, v in adapters(guided).items())


def test_the_teacher_tokens_weight_is_the_bounded_policy_shaping():
    """d loss / d logp of a teacher token is -A * p * gamma / (p + gamma)^2: at most A / (4 gamma)
    whatever p, and no KL term or clipping on it (the ratio to a stale old log-prob is ignored)."""
    import mlx.core as mx

    gamma = 0.1
    settings = LossSettings(kl_beta=0.5, shaping_gamma=gamma)
    logp = mx.array([[np.log(0.02), np.log(0.1), np.log(0.9)]])
    stale, ref = logp - 3.0, logp + 1.0  # a ratio of e^3 and a large KL, were it a student sample
    weights, advantage = mx.ones((1, 3)), mx.array([2.0])

    def loss(logp):
        return clipped_loss(logp, stale, ref, advantage, weights, 1.0, settings, mx.array([1.0]))[0]

    gradient = np.array(mx.grad(loss)(logp))[0]
    p = np.exp(np.array(logp)[0])
    assert np.allclose(gradient, -2.0 * p * gamma / (p + gamma) ** 2, rtol=1e-5)
    assert np.all(np.abs(gradient) <= 2.0 / (4 * gamma) + 1e-6)
    kl, clipped = clipped_loss(logp, stale, ref, advantage, weights, 1.0, settings, mx.array([1.0]))[1]
    assert float(kl) == 0.0 and float(clipped) == 0.0  # the metrics cover student samples only


def test_the_missing_teacher_score_rule():
    assert compute_reward(0.85, 0.92) == 0.924  # the seed's example still holds
    assert compute_reward(0.85, None) is None
    assert trains_on([0.1, 0.2]) and not trains_on([None, None]) and not trains_on([])


def test_a_run_with_the_teacher_in_every_group_writes_reports_and_learns_from_it(rfai, tmp_path, tiny_model_dir):
    (tmp_path / "config.yaml").write_text(guided_config(tiny_model_dir, tmp_path, 2))
    result = rfai("train")
    assert result.returncode == 0, result.stderr
    assert "teacher joined 100%" in result.stderr  # the plain step lines off a terminal
    written = rows(tmp_path / "datasets" / "train.jsonl")
    teacher = [row for row in written if row["sample_source"] == "teacher"]
    students = [row for row in written if row["sample_source"] == "student"]
    assert len(teacher) == 2 * 2 and len(students) == 2 * 2 * 2  # one per group, after its G students
    for row in teacher:
        assert row["sample_index"] == 2 and row["student_code"] == row["teacher_code"]
        assert row["student_score"] == row["teacher_score"] and row["reward"] == 1.0
        assert row["test_results"]["student"]["passed"] == row["test_results"]["student"]["total"] == 1
        assert row["advantage"] > 0  # the tiny model's random text fails; the teacher's passes
    assert all(row["advantage"] < 0 for row in students)
    metrics = [json.loads(line) for line in (tmp_path / "checkpoints" / "metrics.jsonl").read_text().splitlines()]
    assert all(m["teacher_joined_fraction"] == 1.0 and m["teacher_best_fraction"] == 1.0 for m in metrics)
    assert all(m["zero_variance_fraction"] == 0.0 for m in metrics)  # all-fail groups now teach

    card = (tmp_path / "datasets" / "README.md").read_text()
    assert "| teacher in group | always (policy shaping p / (p + 0.1)) |" in card
    assert "The teacher's answer joined 4 of 4 training groups (100%)" in card
    assert "best reward in 4 of them (100%)" in card
    stats = rfai("stats", "datasets/train.jsonl", "--by", "sample_source", "--json")
    by_source = json.loads(stats.stdout)["by"]["sample_source"]
    assert by_source["teacher"]["rows"] == 4 and by_source["student"]["rows"] == 8
    kept = rfai("filter", "datasets/train.jsonl", "--sample-source", "student", "-o", "students.jsonl")
    assert kept.returncode == 0, kept.stderr
    assert {row["sample_source"] for row in rows(tmp_path / "students.jsonl")} == {"student"}
    # pass@k is the student's: the teacher's passing answers are not samples of it, on either path
    students = json.loads(rfai("stats", "students.jsonl", "--json").stdout)["pass_at_k"]
    assert students["samples"] == 8
    for careful in ([], ["--careful"]):
        everything = json.loads(rfai("stats", "datasets/train.jsonl", "--json", *careful).stdout)
        assert everything["pass_at_k"] == students and everything["rows"] == 12


def test_never_writes_no_teacher_sample(rfai, tmp_path, tiny_model_dir):
    (tmp_path / "config.yaml").write_text(guided_config(tiny_model_dir, tmp_path, 1, mode="never"))
    result = rfai("train")
    assert result.returncode == 0 and "teacher joined" not in result.stderr, result.stderr
    written = rows(tmp_path / "datasets" / "train.jsonl")
    assert len(written) == 2 * 2 and {row["sample_source"] for row in written} == {"student"}


@pytest.mark.slow
def test_kill_9_and_resume_with_teacher_samples_gives_the_same_adapters_and_rows(tmp_path, tiny_model_dir):
    written = killed_and_resumed(tmp_path, guided_config(tiny_model_dir, tmp_path, 6), 6)
    assert sum(row["sample_source"] == "teacher" for row in written) == 6 * 2


OPEN_ENDED = [
    {"prompt": "Implement Dijkstra with binary heap + adjacency list. Include a regression test.", "language": language}
    for language in ("python", "rust", "c++")
]


def test_collect_on_open_ended_prompts_without_a_teacher_answer_reports_null_rewards(rfai, tmp_path, tiny_model_dir):
    """No tests and no teacher answer (provider reference, no solution): the rows say so, the
    summary counts them instead of crashing on the missing means (a KeyError before)."""
    (tmp_path / "config.yaml").write_text(
        config_text(tiny_model_dir, 1).replace("teacher:\n", "teacher:\n  provider: reference\n")
    )
    prompts = tmp_path / "open.jsonl"
    prompts.write_text("".join(json.dumps(row) + "\n" for row in OPEN_ENDED))
    result = rfai("collect", "--prompts", prompts, "--samples", "2")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "6 of 6 rows have no reward" in result.stdout
    written = rows(tmp_path / "datasets" / "train.jsonl")
    assert sorted({row["language"] for row in written}) == ["cpp", "python", "rust"]
    assert all(row["reward"] is None and row["teacher_score"] is None for row in written)
    assert all("fallback" in row["score_sources"]["teacher"]["reference"] for row in written)


def test_train_does_not_train_on_groups_without_a_reward(rfai, tmp_path, tiny_model_dir):
    """A row with no reward is never trained on as if its student score were the reward: its
    advantage is 0 and the step says what share of groups had none."""
    tasks = [{k: v for k, v in task.items() if k != "canonical_solution"} for task in SHORT_TASKS]
    prompts = tmp_path / "unsolved.jsonl"
    prompts.write_text("".join(json.dumps(task) + "\n" for task in tasks))
    text = config_text(tiny_model_dir, 1, f"data:\n  train_prompts: {prompts}")
    (tmp_path / "config.yaml").write_text(text.replace("teacher:\n", "teacher:\n  provider: reference\n"))
    result = rfai("train")
    assert result.returncode == 0, result.stderr
    assert "no reward 100%" in result.stderr
    written = rows(tmp_path / "datasets" / "train.jsonl")
    assert all(row["reward"] is None and row["advantage"] == 0.0 for row in written)
    (metrics,) = [json.loads(line) for line in (tmp_path / "checkpoints" / "metrics.jsonl").read_text().splitlines()]
    assert metrics["unrewarded_fraction"] == 1.0 and metrics["reward_mean"] is None


def test_the_ratio_alone_cancels_under_group_normalisation_as_docs_train_md_works_out():
    """Why the teacher needs a sample of its own: dividing a group by its teacher's score changes
    no advantage under `group` until the cap binds, and an all-fail group stays at zero."""
    scores = [0.2, 0.5, 0.5, 0.8]
    raw = group_advantages([scores])[0]
    for teacher in (0.8, 0.4):
        ratio = group_advantages([[compute_reward(s, teacher) for s in scores]])[0]
        assert np.allclose(ratio, raw, atol=1e-3)
    capped = group_advantages([[compute_reward(s, 0.3) for s in scores]])[0]
    assert not np.allclose(capped, raw, atol=1e-3)
    assert group_advantages([[compute_reward(0.0, 1.0)] * 4]) == [[0.0] * 4]
    with_teacher = group_advantages([[0.0] * 4 + [compute_reward(1.0, 1.0)]])[0]
    assert with_teacher[-1] > 1.9 and all(-0.51 < a < -0.49 for a in with_teacher[:4])
