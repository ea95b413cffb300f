"""One training run's state and everything around its steps: the model with its adapters, the
optimizer, the state a checkpoint keeps, the run's files (splits, metrics, checkpoints), held-out
evaluation, and the Ctrl-C that stops it after a step. The step itself is in loop.py."""

from __future__ import annotations

import contextlib
import shutil
import signal
import threading
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from ..config import Config
from ..data.layout import CURVES_FILE
from ..errors import InputError, RfaiError
from ..publish import check_publishing, publish, upload_summary
from ..records import SPLITS
from . import checkpoint
from .curves import write_curves
from .distributed import World
from .grpo import LossSettings
from .metrics import MetricsLog
from .plan import learning_rate_schedule, next_batch, rank_seed, step_seed
from .reporting import Reporters, check_sinks
from .resume import resume_decision


@dataclass
class TrainSummary:
    steps: int
    rows_written: int
    checkpoint: str | None
    metrics: list[dict] = field(default_factory=list)
    ended: str = ""  # why the run stopped where it did
    upload: str | None = None  # where the data went, when the config uploads it
    upload_error: str | None = None  # ... or why it did not


def check_settings(config: Config, tasks: list, world: World) -> None:
    """The one-line errors a run gives before it loads or writes anything."""
    training = config.training
    if training.target_kl is not None and training.kl_beta == 0:
        raise InputError("training.target_kl: the adaptive KL controller scales kl_beta, which is 0; set kl_beta > 0")
    check_sinks(training.report_to)
    if world.is_main:  # rank 0 uploads at the end; its token and access are checked now
        check_publishing(config)
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


def loss_settings(config: Config) -> LossSettings:
    training = config.training
    return LossSettings(
        loss_type=training.loss_type,
        epsilon=training.epsilon,
        epsilon_high=training.epsilon_high if training.epsilon_high is not None else training.epsilon,
        kl_beta=training.kl_beta,
        max_new_tokens=training.max_new_tokens,
        temperature=training.generation_temperature if training.generation_temperature > 0 else 1.0,
        shaping_gamma=training.teacher_shaping_gamma,
    )


class Trainer:
    def __init__(self, config: Config, tasks: list, dataset_dir: Path, world: World, notice: Callable[[str], None]):
        import mlx.optimizers as optim

        from ..engine.generation import seed_sampling
        from ..engine.loading import load_model
        from ..engine.logprobs import shortcut_notice
        from ..engine.lora import attach_lora
        from ..runs import train_fingerprint

        check_settings(config, tasks, world)
        training = config.training
        self.config, self.training, self.tasks, self.world, self.notice = config, training, tasks, world, notice
        self.dataset_dir, self.output_dir = dataset_dir, Path(training.checkpoint_dir)
        self.metrics = MetricsLog(self.output_dir)
        self.student = load_model(
            config.model.base_model,
            config.model.adapter_path,
            config.model.chat_template_args,
            config.model.keep_quantized,
        )
        seed_sampling(training.seed)  # the adapters' initial weights come from the seed too
        self.adapter_config = {
            # The base model as mlx_lm.lora names it, so `mlx_lm.generate --model` can be read off the file.
            "model": config.model.base_model or str(self.student.path),
            **attach_lora(
                self.student.model,
                rank=training.lora_rank,
                alpha=training.lora_alpha,
                dropout=training.lora_dropout,
                layers=training.lora_layers,
            ),
        }
        self._check_same_adapters()
        slow = shortcut_notice(self.student.model)
        if slow:
            notice(slow)
        self.optimizer = optim.AdamW(learning_rate=learning_rate_schedule(training), weight_decay=training.weight_decay)
        self.prints = train_fingerprint(config)
        self.state = checkpoint.TrainState(fingerprint=self.prints)
        self.settings = loss_settings(config)  # kl_beta is the adaptive controller's, step by step
        self.summary = TrainSummary(0, 0, None)
        self.saved_at = 0
        self.stop_requested = False

    # --- start or resume --------------------------------------------------------------------

    def restore(self, resume: bool, force: bool) -> None:
        """Rank 0 finds the checkpoint, checks it and cuts the dataset back to it; every rank
        gets its adapters, optimizer state and run state (and the same error, if any)."""
        decision = resume_decision(self, resume, force) if self.world.is_main else None
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

    def _check_same_adapters(self) -> None:
        """Every rank starts from the same adapters (they come from the same seed): checked once."""
        if self.world.size == 1:
            return
        import mlx.core as mx
        from mlx.utils import tree_flatten

        adapters = tree_flatten(self.student.model.trainable_parameters())
        checksum = float(sum(mx.sum(v * (i + 1)).item() for i, (_, v) in enumerate(adapters)))
        total = self.world.sum_floats(checksum)[0]
        if abs(total - checksum * self.world.size) > 1e-3 * max(1.0, abs(total)):
            raise RfaiError("the ranks' initial adapters differ; every rank must run the same rfai and config")

    def _broadcast_weights(self) -> None:
        import mlx.core as mx
        from mlx.utils import tree_flatten

        adapters = self.world.broadcast(self.student.model.trainable_parameters())
        self.student.model.load_weights(list(tree_flatten(adapters)), strict=False)
        self.optimizer.state = self.world.broadcast(self.optimizer.state)
        mx.eval(self.student.model.parameters(), self.optimizer.state)

    # --- the run's files and helpers --------------------------------------------------------

    @contextlib.contextmanager
    def opened(self, validation: list, evaluation: list, prompt_source: str | None):
        """The rollout (student, teacher, scorer), rank 0's split writers and metric sinks, and
        the run's record in DIR/run.json, for the length of the run."""
        from ..data.layout import append_run
        from ..records import JsonlWriter
        from ..rollout import open_rollout
        from ..runs import run_record, training_facts

        training, world = self.training, self.world
        self.held_out = {
            "validation": validation[: training.eval_limit],
            "evaluation": evaluation[: training.eval_limit],
        }
        self.run_id = world.broadcast_object(uuid.uuid4().hex[:12])
        with contextlib.ExitStack() as stack:
            everything = [*self.tasks, *self.held_out["validation"], *self.held_out["evaluation"]]
            self.rollout = stack.enter_context(
                open_rollout(self.config, student=self.student, tasks=everything, on_notice=self.notice)
            )
            self.models = {**self.student.provenance, "teacher_model": self.rollout.teacher.model}
            self.writers, self.reporters = {}, None
            if world.is_main:
                for split in SPLITS:
                    self.writers[split] = stack.enter_context(JsonlWriter(self.split_path(split)))
                self.reporters = stack.enter_context(
                    Reporters(training.report_to, self.output_dir, self.run_id, self.config.model_dump())
                )
                record = run_record(
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
                )
                append_run(self.dataset_dir, record)
            self.completed = self.file_sizes()  # the files as of the last finished step
            yield self

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
                rows = self.rollout.score(sampled, self.provenance(split)).rows
            for row in rows:
                row.update(step=self.state.step, epoch=self.state.epoch)
            self.write(split, rows)

    def provenance(self, split: str) -> dict:
        """The fields every row of this run's `split` shares."""
        return {"split": split, **self.models, "run_id": self.run_id}

    def write(self, split: str, rows: list[dict]) -> None:
        """Every rank's rows of this batch, written by rank 0 in rank order."""
        gathered = self.world.gather_rows(rows)
        if gathered is not None:
            self.writers[split].write_many(gathered)
            if split == "train":
                self.summary.rows_written += len(gathered)

    def after_step(self, record: dict | None, on_step: Callable[[dict], None] | None) -> None:
        """Log the step's record (rank 0), then the validation pass and the checkpoint when due."""
        training, step = self.training, self.state.step
        if record is not None:
            completions = record.pop("completions", [])  # shown, not kept in metrics.jsonl (the rows are)
            self.metrics.append(record)
            self.reporters.log(record, step)
            self.reporters.log_completions(completions, step)
            self.summary.metrics.append(record)
            if on_step:
                on_step({**record, "completions": completions})
        if training.eval_steps and step % training.eval_steps == 0:
            self.evaluate("validation")
        self.completed = self.file_sizes()
        if step % training.checkpoint_every == 0:
            self.save()

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

    def evaluated(self) -> None:
        """Record in the last checkpoint that the final evaluation is written, with the files'
        lengths after it: a resume from there keeps those rows instead of sampling them again."""
        self.state.evaluated_at = self.state.step
        self.completed = self.file_sizes()
        if self.world.is_main and self.state.step == self.saved_at > 0:
            self.state.dataset_bytes = self.completed
            checkpoint.rewrite_state(self.output_dir, self.state)

    def complete(self) -> bool:
        """Resumed after the final evaluation, with no step left to take."""
        state, training = self.state, self.training
        if state.evaluated_at != state.step or not state.step:
            return False
        return state.step >= training.max_steps or next_batch(replace(state), len(self.tasks), training) is None

    def interrupted(self) -> None:
        if self.state.step > 0:  # the interrupted step's rows are cut back when the run resumes
            if self.state.step > self.saved_at:
                self.save()
            self.notice(f"interrupted after step {self.state.step}; continue with: rfai train --resume")

    def finish(self) -> TrainSummary:
        """The curves, the card and the upload (rank 0), after the last evaluation."""
        self.summary.steps = self.state.step
        if self.world.is_main:
            curves = write_curves(self.metrics.read(), self.output_dir / CURVES_FILE)
            if curves is not None:
                shutil.copyfile(curves, self.dataset_dir / CURVES_FILE)
            try:
                uploaded = publish(self.config, self.dataset_dir)
            except RfaiError as exc:  # the run itself is done: the command reports it, then fails
                self.summary.upload_error = str(exc)
            else:
                self.summary.upload = uploaded and upload_summary(uploaded)
        return self.summary

    def split_path(self, split: str) -> Path:
        from ..data.layout import split_path

        return split_path(self.dataset_dir, split)

    def file_sizes(self) -> dict[str, int]:
        if not self.world.is_main:
            return {}
        paths = {split: self.split_path(split) for split in SPLITS}
        return {split: path.stat().st_size for split, path in paths.items() if path.exists()}


@contextlib.contextmanager
def stop_on_sigint(trainer: Trainer):
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
