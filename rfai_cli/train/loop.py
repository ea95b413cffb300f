"""`rfai train`'s loop: on-policy GRPO with LoRA, on the rollout seam, on one rank or many.

Each step:
1. **sample**: take `batch_size` tasks (plan.py: shuffled per epoch from `training.seed`); the
   teacher gives each a reference and the student, with the current weights, writes G =
   `num_samples_per_prompt` completions of each, decoded together;
2. **score**: the scorer rates every completion and the reference on the rubric; a sample's
   reward is `min(cap, student / max(teacher, floor))`, and where `training.teacher_in_group`
   says so the reference joins its group as one more, off-policy sample (guidance.py);
3. **learn**: advantages are normalised within each group (batch.py), every sample is written
   to `datasets/train.jsonl` with its `advantage`, and one optimizer update of the clipped
   surrogate + KL to the base weights moves the LoRA adapters (update.py, grpo.py);
4. **report**: the step's metrics go to `metrics.jsonl`, the live view and any metric sinks.

Generation and training share the one in-memory model: nothing is merged or reloaded. On several
ranks (distributed.py) each takes whole groups and rank 0 writes everything; with one, every
collective is a no-op. trainer.py holds the run's state, files, checkpoints and evaluation.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from ..config import Config
from .batch import StepBatch, step_batch
from .distributed import World, init_world, lost_peer
from .grpo import adaptive_kl_beta, normaliser
from .metrics import completion_samples, local_facts, step_record
from .plan import next_batch, rank_seed, step_seed
from .trainer import Trainer, TrainSummary, stop_on_sigint
from .update import distillation_batch, update_policy


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
    world: World | None = None,
) -> TrainSummary:
    """Train; on rank 0, `on_step` gets each step's metrics and `on_notice` one-line warnings.
    A first Ctrl-C (SIGINT) stops every rank after the current step; a second stops at once."""
    world = world or init_world()
    notice = on_notice if on_notice and world.is_main else (lambda _message: None)
    try:
        trainer = Trainer(config, tasks, dataset_dir, world, notice)
        trainer.restore(resume, force)
        if trainer.complete():  # nothing to sample again: publish what the run wrote (a retry, if that failed)
            trainer.summary.ended = (
                "already complete, its final evaluation written; raise training.max_steps or training.epochs to go on"
            )
            return trainer.finish()
        with trainer.opened(validation or [], evaluation or [], prompt_source):
            if trainer.state.step == 0:
                trainer.evaluate("evaluation")  # before training: what the run is compared with at the end
            _steps_until_stopped(trainer, on_step if world.is_main else None)
            trainer.evaluate("evaluation")  # ... and after
            trainer.evaluated()
        return trainer.finish()
    except RuntimeError as exc:
        error = lost_peer(exc)
        if error is None:
            raise
        raise error from None


def _steps_until_stopped(trainer: Trainer, on_step) -> None:
    with stop_on_sigint(trainer):
        try:
            _steps(trainer, on_step)
        except KeyboardInterrupt:  # a second Ctrl-C: stop now, at the last finished step
            trainer.interrupted()
            raise
    if trainer.stop_requested:
        trainer.interrupted()
        raise KeyboardInterrupt


def _steps(trainer: Trainer, on_step) -> None:
    training, state, world = trainer.training, trainer.state, trainer.world
    while state.step < training.max_steps:
        if world.any(trainer.stop_requested):  # Ctrl-C on any rank stops every rank here
            trainer.stop_requested = True
            return
        picked = next_batch(state, len(trainer.tasks), training)
        if picked is None:
            trainer.summary.ended = (
                f"the last epoch ended: {training.epochs} epoch(s) of {len(trainer.tasks)} prompts, "
                f"{training.batch_size} a step, before training.max_steps ({training.max_steps}); "
                "raise training.epochs to go on"
            )
            break
        record = train_step(trainer, [trainer.tasks[i] for i in picked[world.rank :: world.size]])
        trainer.after_step(record, on_step)
    else:
        trainer.summary.ended = f"training.max_steps ({training.max_steps}) reached"
    if state.step > trainer.saved_at:  # the last step, whether max_steps or the epochs ended it
        trainer.save()


def train_step(trainer: Trainer, mine: list) -> dict | None:
    """Sample, score, learn from and report this rank's share of one batch; the step's metrics
    on rank 0 (None elsewhere)."""
    from ..engine.generation import seed_sampling

    training, state = trainer.training, trainer.state
    started = time.perf_counter()
    seed_sampling(rank_seed(step_seed(training.seed, state.step), trainer.world.rank))
    sampled = trainer.rollout.sample([(task, list(range(training.num_samples_per_prompt))) for task in mine])
    generated = time.perf_counter()
    scored = trainer.rollout.score(sampled, trainer.provenance("train"))
    score_done = time.perf_counter()
    batch = step_batch(scored, trainer.student.tokenizer, training)
    for row, advantage in zip(batch.rows, batch.advantages):
        row.update(step=state.step + 1, epoch=state.epoch, advantage=round(advantage, 6))
    trainer.write("train", batch.rows)
    update, old = _learn(trainer, batch, sampled)
    _advance(trainer, update)
    seconds = {"generate": generated - started, "score": score_done - generated}
    seconds["train"] = time.perf_counter() - score_done
    record = _report(trainer, batch, old, update, seconds)
    if record is not None and training.log_completions:
        record["completions"] = completion_samples(batch.rows, training.log_completions)
    return record


def _learn(trainer: Trainer, batch: StepBatch, sampled) -> tuple[dict, list]:
    """One policy update on the step's batch (update.py): (metrics, old log-probs per sequence)."""
    import mlx.core as mx

    from ..engine.generation import GENERATION_LOCK
    from ..engine.logprobs import frozen_hidden, token_batch

    training, state, model = trainer.training, trainer.state, trainer.student.model
    tokens = token_batch(batch.prompt_ids, batch.token_ids)
    keep = mx.array([0.0 if training.mask_truncated_completions and cut else 1.0 for cut in batch.truncated])
    trainer.settings = replace(
        trainer.settings, kl_beta=state.kl_beta if state.kl_beta is not None else training.kl_beta
    )
    mask = tokens.mask * keep[:, None]
    totals = tuple(trainer.world.sum_floats(float(len(batch.rows)), float(mask.sum().item())))
    distill = (
        distillation_batch(trainer.student.tokenizer, sampled, training.max_new_tokens)
        if training.distill_weight
        else None
    )
    with GENERATION_LOCK:  # no teacher call may switch LoRA off while the step runs
        weights, scale = normaliser([mask], trainer.settings, totals)
        return update_policy(
            model,
            trainer.optimizer,
            trainer.settings,
            training,
            tokens,
            frozen_hidden(model, tokens),  # shared by the reference and policy passes
            mx.array(batch.advantages),
            weights,
            scale,
            distill=distill,
            world=trainer.world,
            teacher=mx.array([float(t) for t in batch.teacher]) if batch.joined else None,
        )


def _advance(trainer: Trainer, update: dict) -> None:
    """The KL controller, the non-finite counter and the data cursor. Every value they read is
    the same on every rank (summed over ranks), so are the decisions."""
    from ..errors import RfaiError

    training, state = trainer.training, trainer.state
    if training.target_kl is not None and not update["skipped"]:
        state.kl_beta = adaptive_kl_beta(trainer.settings.kl_beta, update["kl"], training.target_kl, training.kl_gain)
    if update["skipped"]:
        state.nonfinite_in_a_row += 1
        trainer.notice(f"step {state.step + 1}: non-finite loss or gradient, update skipped")
        if state.nonfinite_in_a_row >= training.max_nonfinite_steps:
            raise RfaiError(f"training stopped: {state.nonfinite_in_a_row} non-finite steps in a row")
    else:
        state.nonfinite_in_a_row = 0
    state.step += 1
    state.position += training.batch_size


def _report(trainer: Trainer, batch: StepBatch, old: list, update: dict, seconds: dict) -> dict | None:
    """The step's metrics over every rank's share, on rank 0 (None elsewhere)."""
    parts = trainer.world.gather_bytes(json.dumps(local_facts(batch, old)).encode())
    if parts is None:
        return None
    rate = trainer.optimizer.learning_rate
    context = {
        "step": trainer.state.step,
        "epoch": trainer.state.epoch,
        "kl_beta": trainer.settings.kl_beta,
        "learning_rate": float(rate.item()) if hasattr(rate, "item") else float(rate),
    }
    return step_record([json.loads(part) for part in parts], update, context, seconds)
