"""`rfai train`'s loop: on-policy GRPO with LoRA, in one process, on the rollout seam.

Each step takes `batch_size` tasks from the train prompts (shuffled per epoch from
`training.seed`), samples `num_samples_per_prompt` completions of each with the current weights
(generation and training share the same in-memory model: nothing is merged or reloaded),
scores them against the teacher, writes every scored sample to `datasets/train.jsonl` with its
`step`, `epoch` and `advantage`, and makes `num_iterations` updates on the clipped surrogate
(`grpo.py`). The KL reference is the same model with LoRA switched off. The old log-probs are
recomputed once per batch by the same function as the training ones, so the ratio is exactly 1
on the first update.
"""

from __future__ import annotations

import json
import math
import shutil
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .. import engine  # noqa: F401  (preloads OpenBLAS before mlx is imported: MLX is several times slower without it)
from ..config import Config
from ..data.layout import CURVES_FILE
from ..errors import InputError, RfaiError
from . import checkpoint
from .curves import write_curves
from .grpo import (
    LossSettings,
    adaptive_kl_beta,
    clipped_loss,
    group_advantages,
    normaliser,
    zero_variance_fraction,
)
from .reporting import Reporters, check_installed

METRICS_FILE = "metrics.jsonl"


@dataclass
class TrainSummary:
    steps: int
    rows_written: int
    checkpoint: str | None
    metrics: list[dict] = field(default_factory=list)


def learning_rate_schedule(config: Config):
    """Linear warmup to `learning_rate`, then cosine decay over the remaining steps."""
    import mlx.optimizers as optim

    training = config.training
    warmup = min(training.warmup_steps, training.max_steps - 1)
    decay = optim.cosine_decay(training.learning_rate, max(1, training.max_steps - warmup))
    if warmup <= 0:
        return decay
    first = training.learning_rate / (warmup + 1)  # the first update already learns
    return optim.join_schedules([optim.linear_schedule(first, training.learning_rate, warmup), decay], [warmup])


def step_seed(seed: int, step: int) -> int:
    """The random seed of one step: each step's sampling depends on nothing but (seed, step)."""
    return (seed * 1_000_003 + step) % (2**31)


def epoch_order(count: int, seed: int, epoch: int) -> list[int]:
    return list(np.random.default_rng([seed, epoch]).permutation(count))


def run_train(
    config: Config,
    tasks: list,
    *,
    dataset_dir: Path,
    validation: list | None = None,
    evaluation: list | None = None,
    resume: bool = False,
    force: bool = False,
    prompt_source: str | None = None,
    on_step: Callable[[dict], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> TrainSummary:
    import mlx.core as mx
    import mlx.optimizers as optim

    from ..data.layout import append_run, split_path
    from ..engine.generation import GENERATION_LOCK, seed_sampling
    from ..engine.loading import load_model
    from ..engine.logprobs import frozen_hidden, token_batch
    from ..engine.lora import attach_lora
    from ..records import JsonlWriter
    from ..rollout import open_rollout
    from ..runs import fingerprint, run_record

    training = config.training
    if training.target_kl is not None and training.kl_beta == 0:
        raise InputError("training.target_kl: the adaptive KL controller scales kl_beta, which is 0; set kl_beta > 0")
    check_installed(training.report_to)  # before anything is loaded or written
    if not tasks:
        raise InputError("no training prompts")
    if training.batch_size > len(tasks):
        raise InputError(
            f"training.batch_size is {training.batch_size} but there are only {len(tasks)} training prompts"
        )
    output_dir = Path(training.checkpoint_dir)
    train_file = split_path(dataset_dir, "train")
    student = load_model(config.model.base_model, config.model.adapter_path)
    seed_sampling(training.seed)  # the adapters' initial weights come from the seed too
    adapter_config = attach_lora(
        student.model,
        rank=training.lora_rank,
        alpha=training.lora_alpha,
        dropout=training.lora_dropout,
        layers=training.lora_layers,
    )
    optimizer = optim.AdamW(learning_rate=learning_rate_schedule(config), weight_decay=training.weight_decay)
    prints = fingerprint(config)
    state = checkpoint.TrainState(fingerprint=prints)
    previous = checkpoint.latest(output_dir) if resume else None
    if previous is not None:
        state = checkpoint.load(previous, student.model, optimizer)
        _check_same_run(state, prints, previous, force)
        for split, size in state.dataset_bytes.items():
            _cut_back(split_path(dataset_dir, split), size)
    elif resume:
        raise InputError(f"{output_dir}: no checkpoint to resume from")
    elif checkpoint.latest(output_dir) is not None:
        raise InputError(
            f"{output_dir}: already holds checkpoints; pass --resume to continue, or choose another checkpoint_dir"
        )

    base_settings = LossSettings(
        loss_type=training.loss_type,
        epsilon=training.epsilon,
        epsilon_high=training.epsilon_high if training.epsilon_high is not None else training.epsilon,
        kl_beta=training.kl_beta,
        max_new_tokens=training.max_new_tokens,
        temperature=training.generation_temperature if training.generation_temperature > 0 else 1.0,
    )
    run_id = uuid.uuid4().hex[:12]
    summary = TrainSummary(state.step, 0, str(previous) if previous else None)
    metrics_path = output_dir / METRICS_FILE
    output_dir.mkdir(parents=True, exist_ok=True)
    if previous is None:
        metrics_path.unlink(missing_ok=True)
    else:
        _cut_metrics(metrics_path, state.step)

    held_out = {
        "validation": (validation or [])[: training.eval_limit],
        "evaluation": (evaluation or [])[: training.eval_limit],
    }
    with (
        open_rollout(
            config,
            student=student,
            tasks=[*tasks, *held_out["validation"], *held_out["evaluation"]],
            on_notice=on_notice,
        ) as rollout,
        JsonlWriter(train_file) as writer,
        JsonlWriter(split_path(dataset_dir, "validation")) as validation_writer,
        JsonlWriter(split_path(dataset_dir, "evaluation")) as evaluation_writer,
        Reporters(training.report_to, output_dir, run_id, config.model_dump()) as reporters,
    ):
        models = {"student_model": student.name, "teacher_model": rollout.teacher.model}
        append_run(
            dataset_dir,
            run_record(
                config,
                command="train",
                split="train",
                run_id=run_id,
                **models,
                samples=training.num_samples_per_prompt,
                steps=training.max_steps,
                prompts=prompt_source,
                training=training_facts(config),
            ),
        )
        eval_writers = {"validation": validation_writer, "evaluation": evaluation_writer}

        def evaluate(split: str) -> None:
            """Sample and score the held-out prompts of `split` at this step (the same seed every
            time, so only the weights change) into DIR/<split>.jsonl, each row with its `step`."""
            seed_sampling(step_seed(training.seed, 10**6))
            for start in range(0, len(held_out[split]), training.batch_size):
                chunk = held_out[split][start : start + training.batch_size]
                sampled = rollout.sample([(task, list(range(training.eval_samples))) for task in chunk])
                scored = rollout.score(sampled, {"split": split, **models, "run_id": run_id})
                for row in scored.rows:
                    row.update(step=state.step, epoch=state.epoch)
                eval_writers[split].write_many(scored.rows)

        def file_sizes() -> dict[str, int]:
            sizes = {}
            for split in ("train", "validation", "evaluation"):
                path = split_path(dataset_dir, split)
                if path.exists():
                    sizes[split] = path.stat().st_size
            return sizes

        saved_at = state.step

        def save_checkpoint(sizes: dict[str, int]) -> None:
            nonlocal saved_at
            state.dataset_bytes = sizes
            path = checkpoint.save(
                output_dir, student.model, optimizer, adapter_config, state, training.save_total_limit
            )
            summary.checkpoint, saved_at = str(path), state.step

        if state.step == 0:
            evaluate("evaluation")  # before training: what the run is compared with at the end
        completed = file_sizes()  # the files as of the last finished step
        try:
            while state.step < training.max_steps and state.epoch < training.epochs:
                order = epoch_order(len(tasks), training.seed, state.epoch)
                picked = order[state.position : state.position + training.batch_size]
                if len(picked) < training.batch_size:  # the epoch's remainder does not fill a batch
                    state.epoch, state.position = state.epoch + 1, 0
                    continue
                step_started = time.perf_counter()
                seed_sampling(step_seed(training.seed, state.step))
                batch = [(tasks[i], list(range(training.num_samples_per_prompt))) for i in picked]
                sampled = rollout.sample(batch)
                generated = time.perf_counter()
                provenance = {"split": "train", **models, "run_id": run_id}
                scored = rollout.score(sampled, provenance)
                score_done = time.perf_counter()
                rewards = [
                    [_reward(row) for row in scored.rows[k : k + len(indices)]]
                    for k, (_, indices) in zip(_offsets(batch), batch)
                ]
                advantages = group_advantages(rewards, training.scale_rewards)
                flat_advantages = [a for group in advantages for a in group]
                for row, advantage in zip(scored.rows, flat_advantages):
                    row.update(step=state.step + 1, epoch=state.epoch, advantage=round(advantage, 6))
                writer.write_many(scored.rows)
                summary.rows_written += len(scored.rows)

                samples = [sample for group in sampled.samples for sample in group]
                completions = [sample.token_ids for sample in samples]
                batch = token_batch([sample.prompt_ids for sample in samples], completions)
                keep = mx.array(
                    [
                        0.0 if training.mask_truncated_completions and s.finish_reason == "length" else 1.0
                        for s in samples
                    ]
                )
                settings = replace(
                    base_settings, kl_beta=state.kl_beta if state.kl_beta is not None else training.kl_beta
                )
                with GENERATION_LOCK:  # no teacher call may switch LoRA off while the step runs
                    weights, scale = normaliser([batch.mask * keep[:, None]], settings)
                    step_metrics, old = update_policy(
                        student.model,
                        optimizer,
                        settings,
                        training,
                        batch,
                        frozen_hidden(student.model, batch),  # shared by the reference and policy passes
                        mx.array(flat_advantages),
                        weights,
                        scale,
                        distill=distillation_batch(student.tokenizer, sampled, training.max_new_tokens)
                        if training.distill_weight
                        else None,
                    )
                if training.target_kl is not None and not step_metrics["skipped"]:
                    state.kl_beta = adaptive_kl_beta(
                        settings.kl_beta, step_metrics["kl"], training.target_kl, training.kl_gain
                    )
                if step_metrics["skipped"]:
                    state.nonfinite_in_a_row += 1
                    if on_notice:
                        on_notice(f"step {state.step + 1}: non-finite loss or gradient, update skipped")
                    if state.nonfinite_in_a_row >= training.max_nonfinite_steps:
                        raise RfaiError(f"training stopped: {state.nonfinite_in_a_row} non-finite steps in a row")
                else:
                    state.nonfinite_in_a_row = 0
                state.step += 1
                state.position += training.batch_size
                record = {
                    "step": state.step,
                    "epoch": state.epoch,
                    "reward_mean": float(np.mean([r for g in rewards for r in g])),
                    "reward_std": float(np.std([r for g in rewards for r in g])),
                    "pass_rate": _pass_rate(scored.rows),
                    "zero_variance_fraction": zero_variance_fraction(rewards),
                    "completion_tokens_mean": float(np.mean([len(c) for c in completions])),
                    "truncated_fraction": float(np.mean([s.finish_reason == "length" for s in samples])),
                    "sampling_logprob_gap": _logprob_gap(samples, old),
                    **step_metrics,
                    "kl_beta": settings.kl_beta,
                    "learning_rate": float(optimizer.learning_rate.item())
                    if hasattr(optimizer.learning_rate, "item")
                    else float(optimizer.learning_rate),
                    "seconds_generate": round(generated - step_started, 3),
                    "seconds_score": round(score_done - generated, 3),
                    "seconds_train": round(time.perf_counter() - score_done, 3),
                }
                _append_metrics(metrics_path, record)
                reporters.log(record, state.step)
                summary.metrics.append(record)
                if on_step:
                    on_step(record)
                if training.eval_steps and state.step % training.eval_steps == 0:
                    evaluate("validation")
                completed = file_sizes()
                if state.step % training.checkpoint_every == 0:
                    save_checkpoint(completed)
            if state.step > 0 and saved_at != state.step:  # the last step, whether max_steps or the epochs ended it
                save_checkpoint(completed)

        except KeyboardInterrupt:
            if state.step > 0:  # the interrupted step's rows are cut back when the run resumes
                if state.step > saved_at:
                    save_checkpoint(completed)
                if on_notice:
                    on_notice(f"interrupted after step {state.step}; continue with: rfai train --resume")
            raise
        evaluate("evaluation")  # ... and after
    summary.steps = state.step
    curves = write_curves(_read_metrics(metrics_path), output_dir / CURVES_FILE)
    if curves is not None:
        shutil.copyfile(curves, dataset_dir / CURVES_FILE)
    _finish(config, dataset_dir, on_notice)
    return summary


def training_facts(config: Config) -> dict:
    """The settings a dataset card's "Training details" shows: LoRA, optimizer, loss."""
    t = config.training
    return {
        "lora": f"rank {t.lora_rank}, alpha {t.lora_alpha:g} (scale {t.lora_alpha / t.lora_rank:g}), "
        f"last {t.lora_layers} blocks, dropout {t.lora_dropout:g}",
        "optimizer": f"AdamW, lr {t.learning_rate:g}, warmup {t.warmup_steps} then cosine, "
        f"weight decay {t.weight_decay:g}, grad norm {t.max_grad_norm:g}",
        "loss": f"{t.loss_type}, epsilon {t.epsilon:g}/{t.epsilon_high if t.epsilon_high is not None else t.epsilon:g}, "
        f"kl_beta {t.kl_beta:g}"
        + (f" (adaptive, target {t.target_kl:g})" if t.target_kl else "")
        + (f", distill_weight {t.distill_weight:g}" if t.distill_weight else ""),
        "batch": f"{t.batch_size} prompts x {t.num_samples_per_prompt} samples, "
        f"{t.gradient_accumulation_steps} micro-batches, {t.num_iterations} updates per batch",
        "sampling": f"temperature {t.generation_temperature:g}, top_p {t.top_p:g}, top_k {t.top_k}, "
        f"max {t.max_new_tokens} new tokens",
        "seed": t.seed,
    }


def _finish(config: Config, dataset_dir: Path, on_notice: Callable[[str], None] | None) -> None:
    """The dataset card, and the upload when `huggingface.upload_datasets` is set. A failed upload
    loses nothing: it says which command retries it."""
    from ..data.card import write_card

    write_card(dataset_dir, repo_id=config.huggingface.dataset_repo_id, config=config)
    if not (config.huggingface.upload_datasets and config.huggingface.dataset_repo_id):
        return
    from ..data.hub import upload_dataset

    try:
        upload_dataset(
            dataset_dir, config.huggingface.dataset_repo_id, private=config.huggingface.private, config=config
        )
    except RfaiError as exc:
        if on_notice:
            on_notice(
                f"upload failed ({exc}); retry with: rfai upload --repo-id {config.huggingface.dataset_repo_id} "
                f"--dataset-dir {dataset_dir}"
            )


def policy_value_and_grad(model, settings: LossSettings):
    """(loss, (kl, clip fraction, log-probs)) and the gradient w.r.t. the trainable (LoRA)
    parameters. The forward pass is inside the differentiated function, and nothing is
    compiled, so the LoRA weights are never captured as constants (the two ways a trainer ends
    up learning nothing). With `old` None, the old log-probs are this pass's own, held constant:
    the same function on the same weights, so the ratio is exactly 1 without a pass of its own."""
    import mlx.core as mx
    import mlx.nn as nn

    from ..engine.logprobs import batch_logprobs

    def loss_fn(model, batch, hidden, advantages, old, ref, weights, scale):
        logp = batch_logprobs(model, batch, settings.temperature, hidden)
        old = mx.stop_gradient(logp) if old is None else old
        loss, (kl, clipped) = clipped_loss(logp, old, ref, advantages, weights, scale, settings)
        return loss, (kl, clipped, old)

    return nn.value_and_grad(model, loss_fn)


def update_policy(
    model, optimizer, settings: LossSettings, training, batch, hidden, advantages, weights, scale, distill=None
):
    """`num_iterations` optimizer updates on one TokenBatch, each accumulating the full batch's
    gradient over `gradient_accumulation_steps` micro-batches; a non-finite loss or gradient
    skips the update. The reference log-probs (LoRA off) are taken per micro-batch on the first
    iteration, so memory holds one micro-batch's logits at a time. `hidden` is the batch's
    `frozen_hidden` (or None). `distill`, a TokenBatch of the teachers' answers, adds
    `training.distill_weight` x their mean per-token NLL under the policy. Returns (metrics, old
    log-probs per sequence). Holds the engine's
    generation lock: the local teacher switches LoRA off in place under that lock, and must not
    do so while a gradient is taken."""
    from ..engine.generation import GENERATION_LOCK

    with GENERATION_LOCK:
        return _update_policy(model, optimizer, settings, training, batch, hidden, advantages, weights, scale, distill)


def _update_policy(model, optimizer, settings, training, batch, hidden, advantages, weights, scale, distill):
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    from mlx.utils import tree_map

    from ..engine.logprobs import batch_logprobs, frozen_hidden
    from ..engine.lora import lora_disabled

    value_and_grad = policy_value_and_grad(model, settings)
    if distill is not None:
        distill_hidden = frozen_hidden(model, distill)
        distill_value_and_grad = nn.value_and_grad(model, _nll)
    size = len(batch.lengths)
    chunks = [c.tolist() for c in np.array_split(np.arange(size), min(training.gradient_accumulation_steps, size))]
    olds: list = [None] * len(chunks)  # the first iteration's log-probs, the ratio's denominator after it
    refs: list = [None] * len(chunks)
    totals = {"loss": 0.0, "kl": 0.0, "clip_fraction": 0.0, "grad_norm": 0.0, "skipped": False}
    for _ in range(training.num_iterations):
        grads, loss, kl, clipped = None, 0.0, 0.0, 0.0
        for k, chunk in enumerate(chunks):
            part = batch.rows(chunk)
            index, steps = mx.array(chunk), part.targets.shape[1]
            part_hidden = None if hidden is None else hidden[index, : part.inputs.shape[1]]
            if refs[k] is None:
                with lora_disabled(model):
                    refs[k] = mx.stop_gradient(batch_logprobs(model, part, settings.temperature, part_hidden))
            (value, (chunk_kl, chunk_clipped, olds[k])), chunk_grads = value_and_grad(
                model, part, part_hidden, advantages[index], olds[k], refs[k], weights[index, :steps], scale
            )
            grads = chunk_grads if grads is None else tree_map(mx.add, grads, chunk_grads)
            mx.eval(grads, value, chunk_kl, chunk_clipped, olds[k])  # one micro-batch's graph in memory at a time
            loss += float(value.item())
            kl += float(chunk_kl.item()) * len(chunk) / size
            clipped += float(chunk_clipped.item()) * len(chunk) / size
        if distill is not None:
            nll, distill_grads = distill_value_and_grad(model, distill, distill_hidden)
            grads = tree_map(lambda g, d: g + training.distill_weight * d, grads, distill_grads)
            mx.eval(grads, nll)
            loss += training.distill_weight * float(nll.item())
            totals["distill_nll"] = float(nll.item())
        grads, norm = optim.clip_grad_norm(grads, training.max_grad_norm)
        norm = float(norm.item())
        if not (math.isfinite(loss) and math.isfinite(norm)):
            totals["skipped"] = True
            break
        optimizer.update(model, grads)
        mx.eval(model.trainable_parameters(), optimizer.state)
        totals.update(loss=loss, kl=kl, clip_fraction=clipped, grad_norm=norm)
    old_rows = [np.array(olds[k][j, : batch.lengths[i]]) for k, chunk in enumerate(chunks) for j, i in enumerate(chunk)]
    return totals, old_rows


def _nll(model, batch, hidden):
    """The mean per-token negative log-likelihood of `batch`'s completions (the distillation term)."""
    from ..engine.logprobs import batch_logprobs

    return -batch_logprobs(model, batch, 1.0, hidden).sum() / max(sum(batch.lengths), 1)


def distillation_batch(tokenizer, sampled, max_tokens: int):
    """A TokenBatch of each task's teacher answer, written as the student is asked to answer: one
    fenced code block (at most `max_tokens` tokens); None when no teacher gave code."""
    from ..engine.logprobs import token_batch

    prompts, answers = [], []
    for (task, _), samples, reference in zip(sampled.batch, sampled.samples, sampled.references):
        if reference.code and samples:
            answer = f"```{task.language}\n{reference.code.strip()}\n```"
            prompts.append(samples[0].prompt_ids)
            answers.append(tokenizer.encode(answer, add_special_tokens=False)[:max_tokens])
    return token_batch(prompts, answers) if prompts else None


def _offsets(batch) -> list[int]:
    offsets, position = [], 0
    for _, indices in batch:
        offsets.append(position)
        position += len(indices)
    return offsets


def _reward(row: dict) -> float:
    value = row.get("reward")
    return float(value if isinstance(value, (int, float)) else row.get("student_score") or 0.0)


def _pass_rate(rows: list[dict]) -> float | None:
    tested = [
        r["test_results"]["student"] for r in rows if (r.get("test_results") or {}).get("student", {}).get("total")
    ]
    return sum(t["passed"] for t in tested) / sum(t["total"] for t in tested) if tested else None


def _logprob_gap(samples, old_rows) -> float:
    """Mean |engine sampling log-prob - recomputed log-prob| per token: 0 up to float noise when
    the sampling and training distributions are the same (temperature 1, no truncation)."""
    gaps = np.concatenate([np.abs(np.array(s.logprobs) - old) for s, old in zip(samples, old_rows)] or [np.zeros(0)])
    return float(gaps.mean()) if gaps.size else 0.0


def _check_same_run(state, prints: dict, previous: Path, force: bool) -> None:
    from ..runs import first_difference

    difference = first_difference(state.fingerprint, prints)
    if difference and not force:
        key, was, now = difference
        raise InputError(
            f"{previous}: was trained with {key} = {was!r}, this run has {now!r}; "
            "pass --force to resume anyway, or choose another checkpoint_dir"
        )


def _cut_back(path: Path, size: int | None) -> None:
    """Rows written after the checkpoint are dropped: the resumed run writes them again."""
    if size is not None and path.exists() and path.stat().st_size > size:
        with open(path, "r+b") as handle:
            handle.truncate(size)


def _append_metrics(path: Path, record: dict) -> None:
    from ..output import write_error

    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
    except OSError as exc:  # a full disk: the step is redone on resume
        raise write_error(path, exc) from None


def _read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _cut_metrics(path: Path, step: int) -> None:
    if not path.exists():
        return
    from ..output import write_text

    kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line).get("step", 0) <= step]
    write_text(path, "".join(line + "\n" for line in kept))
