"""`rfai train`'s loop: on-policy GRPO with LoRA, on the rollout seam, on one rank or many.

Each step takes `batch_size` tasks from the train prompts (shuffled per epoch from
`training.seed`), samples `num_samples_per_prompt` completions of each with the current weights
(generation and training share the same in-memory model: nothing is merged or reloaded),
scores them against the teacher, writes every scored sample to `datasets/train.jsonl` with its
`step`, `epoch` and `advantage`, and updates the adapters (`update.py`). On several ranks
(`distributed.py`) each takes whole groups of the batch and rank 0 writes everything; with one,
every collective is a no-op.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .. import engine  # noqa: F401  (preloads OpenBLAS before mlx is imported: MLX is several times slower without it)
from ..config import Config
from ..data.layout import CURVES_FILE
from ..errors import InputError, RfaiError
from ..scoring.rubric import trains_on
from . import checkpoint
from .batch import StepBatch, step_batch
from .curves import write_curves
from .distributed import World, init_world, lost_peer
from .grpo import LossSettings, adaptive_kl_beta, normaliser, zero_variance_fraction
from .guidance import guidance_metrics
from .reporting import Reporters, check_installed
from .update import distillation_batch, update_policy

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


def rank_seed(seed: int, rank: int) -> int:
    """Each rank samples with its own key; rank 0's is the single-process one."""
    return (seed + rank * 7_919_993) % (2**31)


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
    world: World | None = None,
) -> TrainSummary:
    """Train; on rank 0, `on_step` gets each step's metrics and `on_notice` one-line warnings.
    A first Ctrl-C (SIGINT) stops every rank after the current step; a second stops at once."""
    world = world or init_world()
    notice = on_notice if on_notice and world.is_main else (lambda _message: None)
    try:
        trainer = Trainer(config, tasks, dataset_dir, world, notice)
        trainer.restore(resume, force)
        return trainer.run(validation or [], evaluation or [], prompt_source, on_step if world.is_main else None)
    except RuntimeError as exc:
        error = lost_peer(exc)
        if error is None:
            raise
        raise error from None


class Trainer:
    """One training run: the model with its adapters, the optimizer, the state a checkpoint keeps."""

    def __init__(self, config: Config, tasks: list, dataset_dir: Path, world: World, notice: Callable[[str], None]):
        import mlx.optimizers as optim

        from ..engine.generation import seed_sampling
        from ..engine.loading import load_model
        from ..engine.lora import attach_lora
        from ..runs import train_fingerprint

        training = config.training
        if training.target_kl is not None and training.kl_beta == 0:
            raise InputError(
                "training.target_kl: the adaptive KL controller scales kl_beta, which is 0; set kl_beta > 0"
            )
        check_installed(training.report_to)  # before anything is loaded or written
        if not tasks:
            raise InputError("no training prompts")
        if training.batch_size > len(tasks):
            raise InputError(
                f"training.batch_size is {training.batch_size} but there are only {len(tasks)} training prompts"
            )
        if training.batch_size % world.size:
            raise InputError(
                f"training.batch_size is {training.batch_size}, which {world.size} ranks cannot share "
                "(each takes whole prompt groups): make it a multiple of the number of ranks"
            )
        self.config, self.training, self.tasks, self.world, self.notice = config, training, tasks, world, notice
        self.dataset_dir, self.output_dir = dataset_dir, Path(training.checkpoint_dir)
        self.metrics_path = self.output_dir / METRICS_FILE
        self.student = load_model(config.model.base_model, config.model.adapter_path)
        seed_sampling(training.seed)  # the adapters' initial weights come from the seed too
        self.adapter_config = attach_lora(
            self.student.model,
            rank=training.lora_rank,
            alpha=training.lora_alpha,
            dropout=training.lora_dropout,
            layers=training.lora_layers,
        )
        self._check_same_adapters()
        self.optimizer = optim.AdamW(learning_rate=learning_rate_schedule(config), weight_decay=training.weight_decay)
        self.prints = train_fingerprint(config)
        self.state = checkpoint.TrainState(fingerprint=self.prints)
        self.base_settings = LossSettings(
            loss_type=training.loss_type,
            epsilon=training.epsilon,
            epsilon_high=training.epsilon_high if training.epsilon_high is not None else training.epsilon,
            kl_beta=training.kl_beta,
            max_new_tokens=training.max_new_tokens,
            temperature=training.generation_temperature if training.generation_temperature > 0 else 1.0,
            shaping_gamma=training.teacher_shaping_gamma,
        )
        self.settings = self.base_settings
        self.summary = TrainSummary(0, 0, None)
        self.saved_at = 0
        self.stop_requested = False

    # --- start or resume --------------------------------------------------------------------

    def restore(self, resume: bool, force: bool) -> None:
        """Rank 0 finds the checkpoint, checks it and cuts the dataset back to it; every rank
        gets its adapters, optimizer state and run state (and the same error, if any)."""
        decision = self._resume_decision(resume, force) if self.world.is_main else None
        decision = self.world.broadcast_object(decision)
        if "error" in decision:
            raise InputError(decision["error"])
        if decision.get("state"):
            if not self.world.is_main:  # the same structure as rank 0's, then rank 0's values
                self.optimizer.init(self.student.model.trainable_parameters())
            self._broadcast_weights()
            self.state = checkpoint.TrainState(**decision["state"])
            self.summary.checkpoint = decision["checkpoint"]
        self.summary.steps = self.saved_at = self.state.step

    def _resume_decision(self, resume: bool, force: bool) -> dict:
        previous = checkpoint.latest(self.output_dir) if resume else None
        try:
            if previous is None:
                if resume:
                    raise InputError(f"{self.output_dir}: no checkpoint to resume from")
                if checkpoint.latest(self.output_dir) is not None:
                    raise InputError(
                        f"{self.output_dir}: already holds checkpoints; pass --resume to continue, "
                        "or choose another checkpoint_dir"
                    )
                self.output_dir.mkdir(parents=True, exist_ok=True)
                self.metrics_path.unlink(missing_ok=True)
                return {}
            state = checkpoint.load(previous, self.student.model, self.optimizer)
            _check_same_run(state, self.prints, previous, force)
        except InputError as exc:
            return {"error": str(exc)}
        for split, size in state.dataset_bytes.items():
            _cut_back(self._split_path(split), size)
        _cut_metrics(self.metrics_path, state.step)
        return {"state": asdict(state), "checkpoint": str(previous)}

    def _check_same_adapters(self) -> None:
        """Every rank starts from the same adapters (they come from the same seed): checked once."""
        if self.world.size == 1:
            return
        import mlx.core as mx
        from mlx.utils import tree_flatten

        checksum = float(sum(mx.sum(v * (i + 1)).item() for i, (_, v) in enumerate(tree_flatten(self._adapters()))))
        total = self.world.sum_floats(checksum)[0]
        if abs(total - checksum * self.world.size) > 1e-3 * max(1.0, abs(total)):
            raise RfaiError("the ranks' initial adapters differ; every rank must run the same rfai and config")

    def _adapters(self):
        return self.student.model.trainable_parameters()

    def _broadcast_weights(self) -> None:
        import mlx.core as mx
        from mlx.utils import tree_flatten

        adapters = self.world.broadcast(self._adapters())
        self.student.model.load_weights(list(tree_flatten(adapters)), strict=False)
        self.optimizer.state = self.world.broadcast(self.optimizer.state)
        mx.eval(self.student.model.parameters(), self.optimizer.state)

    # --- the run ----------------------------------------------------------------------------

    def run(self, validation: list, evaluation: list, prompt_source: str | None, on_step) -> TrainSummary:
        from ..data.layout import append_run
        from ..records import JsonlWriter
        from ..rollout import open_rollout
        from ..runs import run_record

        training, world = self.training, self.world
        self.held_out = {
            "validation": validation[: training.eval_limit],
            "evaluation": evaluation[: training.eval_limit],
        }
        self.run_id = world.broadcast_object(uuid.uuid4().hex[:12])
        with contextlib.ExitStack() as stack:
            self.rollout = stack.enter_context(
                open_rollout(
                    self.config,
                    student=self.student,
                    tasks=[*self.tasks, *self.held_out["validation"], *self.held_out["evaluation"]],
                    on_notice=self.notice,
                )
            )
            self.writers = {}
            self.reporters = None
            if world.is_main:
                for split in ("train", "validation", "evaluation"):
                    self.writers[split] = stack.enter_context(JsonlWriter(self._split_path(split)))
                self.reporters = stack.enter_context(
                    Reporters(training.report_to, self.output_dir, self.run_id, self.config.model_dump())
                )
            self.models = {"student_model": self.student.name, "teacher_model": self.rollout.teacher.model}
            if world.is_main:
                append_run(
                    self.dataset_dir,
                    run_record(
                        self.config,
                        command="train",
                        split="train",
                        run_id=self.run_id,
                        **self.models,
                        samples=training.num_samples_per_prompt,
                        steps=training.max_steps,
                        prompts=prompt_source,
                        training=training_facts(self.config),
                        **({"ranks": world.size} if world.size > 1 else {}),
                    ),
                )
            if self.state.step == 0:
                self.evaluate("evaluation")  # before training: what the run is compared with at the end
            self.completed = self._file_sizes()  # the files as of the last finished step
            with _stop_on_sigint(self):
                try:
                    self._steps(on_step)
                except KeyboardInterrupt:  # a second Ctrl-C: stop now, at the last finished step
                    self._interrupted()
                    raise
            if self.stop_requested:
                self._interrupted()
                raise KeyboardInterrupt
            self.evaluate("evaluation")  # ... and after
        self.summary.steps = self.state.step
        if world.is_main:
            curves = write_curves(_read_metrics(self.metrics_path), self.output_dir / CURVES_FILE)
            if curves is not None:
                shutil.copyfile(curves, self.dataset_dir / CURVES_FILE)
            _finish(self.config, self.dataset_dir, self.notice)
        return self.summary

    def _steps(self, on_step) -> None:
        training, state = self.training, self.state
        while state.step < training.max_steps and state.epoch < training.epochs:
            if self.world.any(self.stop_requested):  # Ctrl-C on any rank stops every rank here
                self.stop_requested = True
                return
            order = epoch_order(len(self.tasks), training.seed, state.epoch)
            picked = order[state.position : state.position + training.batch_size]
            if len(picked) < training.batch_size:  # the epoch's remainder does not fill a batch
                state.epoch, state.position = state.epoch + 1, 0
                continue
            record = self.step([self.tasks[i] for i in picked[self.world.rank :: self.world.size]])
            if record is not None:
                _append_metrics(self.metrics_path, record)
                self.reporters.log(record, state.step)
                self.summary.metrics.append(record)
                if on_step:
                    on_step(record)
            if training.eval_steps and state.step % training.eval_steps == 0:
                self.evaluate("validation")
            self.completed = self._file_sizes()
            if state.step % training.checkpoint_every == 0:
                self.save()
        if state.step > self.saved_at:  # the last step, whether max_steps or the epochs ended it
            self.save()

    def step(self, mine: list) -> dict | None:
        """Sample, score, write and learn from this rank's share of one batch; the step's
        metrics on rank 0 (None elsewhere)."""
        from ..engine.generation import seed_sampling

        training, state, world = self.training, self.state, self.world
        started = time.perf_counter()
        seed_sampling(rank_seed(step_seed(training.seed, state.step), world.rank))
        sampled = self.rollout.sample([(task, list(range(training.num_samples_per_prompt))) for task in mine])
        generated = time.perf_counter()
        scored = self.rollout.score(sampled, {"split": "train", **self.models, "run_id": self.run_id})
        score_done = time.perf_counter()
        batch = step_batch(scored, self.student.tokenizer, training)
        for row, advantage in zip(batch.rows, batch.advantages):
            row.update(step=state.step + 1, epoch=state.epoch, advantage=round(advantage, 6))
        self._write("train", batch.rows)
        step_metrics, old = self._learn(batch, sampled)
        self._after_update(step_metrics)
        seconds = {"generate": generated - started, "score": score_done - generated}
        seconds["train"] = time.perf_counter() - score_done
        return self._step_report(batch, old, step_metrics, seconds)

    def _learn(self, batch: StepBatch, sampled) -> tuple[dict, list]:
        """One policy update on the step's batch (update.py): (metrics, old log-probs per sequence)."""
        import mlx.core as mx

        from ..engine.generation import GENERATION_LOCK
        from ..engine.logprobs import frozen_hidden, token_batch

        training, state = self.training, self.state
        tokens = token_batch(batch.prompt_ids, batch.token_ids)
        keep = mx.array([0.0 if training.mask_truncated_completions and cut else 1.0 for cut in batch.truncated])
        self.settings = replace(
            self.base_settings, kl_beta=state.kl_beta if state.kl_beta is not None else training.kl_beta
        )
        mask = tokens.mask * keep[:, None]
        totals = tuple(self.world.sum_floats(float(len(batch.rows)), float(mask.sum().item())))
        with GENERATION_LOCK:  # no teacher call may switch LoRA off while the step runs
            weights, scale = normaliser([mask], self.settings, totals)
            return update_policy(
                self.student.model,
                self.optimizer,
                self.settings,
                training,
                tokens,
                frozen_hidden(self.student.model, tokens),  # shared by the reference and policy passes
                mx.array(batch.advantages),
                weights,
                scale,
                distill=distillation_batch(self.student.tokenizer, sampled, training.max_new_tokens)
                if training.distill_weight
                else None,
                world=self.world,
                teacher=mx.array([float(t) for t in batch.teacher]) if batch.joined else None,
            )

    def _after_update(self, step_metrics: dict) -> None:
        """The KL controller, the non-finite counter and the data cursor. Every value they read
        is the same on every rank (summed over ranks), so are the decisions."""
        training, state = self.training, self.state
        if training.target_kl is not None and not step_metrics["skipped"]:
            state.kl_beta = adaptive_kl_beta(
                self.settings.kl_beta, step_metrics["kl"], training.target_kl, training.kl_gain
            )
        if step_metrics["skipped"]:
            state.nonfinite_in_a_row += 1
            self.notice(f"step {state.step + 1}: non-finite loss or gradient, update skipped")
            if state.nonfinite_in_a_row >= training.max_nonfinite_steps:
                raise RfaiError(f"training stopped: {state.nonfinite_in_a_row} non-finite steps in a row")
        else:
            state.nonfinite_in_a_row = 0
        state.step += 1
        state.position += training.batch_size

    def _step_report(self, batch: StepBatch, old: list, step_metrics: dict, seconds: dict) -> dict | None:
        """The step's metrics over every rank's share, on rank 0 (None elsewhere)."""
        import mlx.core as mx

        students = [i for i, teacher in enumerate(batch.teacher) if not teacher]
        local = {
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
        parts = self.world.gather_bytes(json.dumps(local).encode())
        if parts is None:
            return None
        facts = [json.loads(part) for part in parts]
        groups = [group for part in facts for group in part["groups"]]
        rewarded = [r for part in facts for r in part["student_rewards"] if r is not None]
        lengths = [n for part in facts for n in part["lengths"]]
        guidance = {key: sum(part["guidance"][key] for part in facts) for key in facts[0]["guidance"]}
        criteria = _criterion_means([b for part in facts for b in part["breakdowns"]])
        trained = [group for group in groups if trains_on(group)]
        generate = seconds["generate"]
        return {
            "step": self.state.step,
            "epoch": self.state.epoch,
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
            **step_metrics,
            "kl_beta": self.settings.kl_beta,
            "learning_rate": _learning_rate(self.optimizer),
            "seconds_generate": round(generate, 3),
            "seconds_score": round(seconds["score"], 3),
            "seconds_train": round(seconds["train"], 3),
            "generated_tokens_per_second": round(sum(lengths) / max(generate, 1e-9), 1),
            "peak_memory_gib": round(max(part["peak_gib"] for part in facts), 3),  # MLX's, the largest rank's
        }

    def evaluate(self, split: str) -> None:
        """Sample and score the held-out prompts of `split` at this step (the same seed every
        time, so only the weights change) into DIR/<split>.jsonl, each row with its `step`."""
        from ..engine.generation import seed_sampling

        training, world = self.training, self.world
        seed_sampling(rank_seed(step_seed(training.seed, 10**6), world.rank))
        tasks = self.held_out[split]
        for start in range(0, len(tasks), training.batch_size):
            mine = tasks[start : start + training.batch_size][world.rank :: world.size]
            rows = []
            if mine:
                sampled = self.rollout.sample([(task, list(range(training.eval_samples))) for task in mine])
                rows = self.rollout.score(sampled, {"split": split, **self.models, "run_id": self.run_id}).rows
            for row in rows:
                row.update(step=self.state.step, epoch=self.state.epoch)
            self._write(split, rows)

    def _write(self, split: str, rows: list[dict]) -> None:
        """Every rank's rows of this batch, written by rank 0 in rank order."""
        gathered = self.world.gather_rows(rows)
        if gathered is not None:
            self.writers[split].write_many(gathered)
            if split == "train":
                self.summary.rows_written += len(gathered)

    def save(self) -> None:
        """A checkpoint of the last finished step (rank 0 writes it; the files are its own)."""
        if self.world.is_main:
            self.state.dataset_bytes = self.completed
            path = checkpoint.save(
                self.output_dir,
                self.student.model,
                self.optimizer,
                self.adapter_config,
                self.state,
                self.training.save_total_limit,
            )
            self.summary.checkpoint = str(path)
        self.saved_at = self.state.step

    def _interrupted(self) -> None:
        if self.state.step > 0:  # the interrupted step's rows are cut back when the run resumes
            if self.state.step > self.saved_at:
                self.save()
            self.notice(f"interrupted after step {self.state.step}; continue with: rfai train --resume")

    def _split_path(self, split: str) -> Path:
        from ..data.layout import split_path

        return split_path(self.dataset_dir, split)

    def _file_sizes(self) -> dict[str, int]:
        if not self.world.is_main:
            return {}
        paths = {split: self._split_path(split) for split in ("train", "validation", "evaluation")}
        return {split: path.stat().st_size for split, path in paths.items() if path.exists()}


@contextlib.contextmanager
def _stop_on_sigint(trainer: Trainer):
    """The first Ctrl-C asks every rank to stop after the current step (nothing is cut short);
    a second one stops at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if trainer.stop_requested:
            raise KeyboardInterrupt
        trainer.stop_requested = True
        trainer.notice("stopping after this step (Ctrl-C again to stop now)")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _learning_rate(optimizer) -> float:
    rate = optimizer.learning_rate
    return float(rate.item()) if hasattr(rate, "item") else float(rate)


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
        "teacher in group": t.teacher_in_group
        + (f" (policy shaping p / (p + {t.teacher_shaping_gamma:g}))" if t.teacher_in_group != "never" else ""),
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
