"""What a run records about itself: the fingerprint of the settings that change its rows, and its
record in the dataset directory's run log (`data/layout.py` reads and writes the log).

`collect` writes a record per run and resumes a split only when the fingerprint matches the one
the split was collected with; `train` will do the same.
"""

from __future__ import annotations

from typing import Any

from . import __version__
from .config import Config
from .data.layout import REWARD_FORMULA, fingerprint_id
from .errors import InputError
from .records import utc_timestamp


def fingerprint(config: Config) -> dict[str, Any]:
    """Everything that changes what a row holds: the models, the sampling, the teacher and the
    rubric. Nothing else (paths, workers, timeouts of the API) is in it."""
    training, teacher, scoring = config.training, config.teacher, config.scoring
    return {
        "model": config.model.base_model,
        "adapters": config.model.adapter_path,
        # Only when set: runs from before the key resume as they were.
        **({"chat_template_args": config.model.chat_template_args} if config.model.chat_template_args else {}),
        **({"keep_quantized": config.model.keep_quantized} if config.model.keep_quantized is not None else {}),
        "sampling": {
            "temperature": training.generation_temperature,
            "top_p": training.top_p,
            "top_k": training.top_k,
            "max_new_tokens": training.max_new_tokens,
            "seed": training.seed,
        },
        "teacher": {
            "provider": teacher.provider,
            "model": teacher.model_name,
            "base_url": teacher.base_url,
            "temperature": teacher.temperature,
            "max_tokens": teacher.max_tokens,
            "judge": teacher.judge,
            "write_tests": teacher.write_tests,
        },
        "rubric": {
            "weights": scoring.weights.model_dump(),
            "reward_floor": scoring.reward_floor,
            "reward_cap": scoring.reward_cap,
            "judge_weight": scoring.judge_weight,
        },
    }


# Every training key either changes what a resumed run learns, and takes part in its fingerprint, or
# is safe to change between a run and its resume (a test keeps the two lists and the config in step).
# sampling (temperature, top_p, top_k, max_new_tokens, seed) is in `fingerprint` already.
TRAINED_WITH = (
    "num_samples_per_prompt",
    "batch_size",
    "learning_rate",
    "warmup_steps",
    "max_grad_norm",
    "weight_decay",
    "kl_beta",
    "target_kl",
    "kl_gain",
    "distill_weight",
    "teacher_in_group",
    "teacher_shaping_gamma",
    "loss_type",
    "scale_rewards",
    "epsilon",
    "epsilon_high",
    "num_iterations",
    "mask_truncated_completions",
    "lora_rank",
    "lora_alpha",
    "lora_dropout",
    "lora_layers",
)
SAFE_ON_RESUME = (
    "max_steps",  # continue a finished run further; the cosine decay stretches to the new end
    "epochs",
    "gradient_accumulation_steps",  # the same gradient, in other micro-batches
    "max_nonfinite_steps",
    "rank_timeout",
    "checkpoint_dir",
    "checkpoint_every",
    "save_total_limit",
    "report_to",
    "log_completions",  # what is shown, not what is learned
    "eval_steps",
    "eval_samples",
    "eval_limit",
)


def train_fingerprint(config: Config) -> dict[str, Any]:
    """`fingerprint` and the training settings a resumed run must share with its checkpoint."""
    return {
        **fingerprint(config),
        "training": {key: getattr(config.training, key) for key in TRAINED_WITH},
    }


def run_record(config: Config, *, command: str, split: str, run_id: str, **facts: Any) -> dict[str, Any]:
    """One entry of DIR/run.json: what produced this run's rows, for the card and for resume."""
    prints = fingerprint(config)
    return {
        "run_id": run_id,
        "command": command,
        "split": split,
        "started": utc_timestamp(),
        "rfai_version": __version__,
        **facts,
        "teacher_provider": config.teacher.provider,
        "sampling": prints["sampling"],
        "rubric_weights": prints["rubric"]["weights"],
        "reward": {"formula": REWARD_FORMULA, "floor": config.scoring.reward_floor, "cap": config.scoring.reward_cap},
        "fingerprint": prints,
        "fingerprint_id": fingerprint_id(prints),
    }


# Where each fingerprint section is set in the config, so the message names a key the user can change.
_CONFIG_KEY = {
    "model": "model.base_model",
    "adapters": "model.adapter_path",
    "chat_template_args": "model.chat_template_args",
    "keep_quantized": "model.keep_quantized",
    "sampling": "training",
    "rubric": "scoring",
}
_CONFIG_KEY |= {"sampling.temperature": "training.generation_temperature", "teacher.model": "teacher.model_name"}


def config_key(path: str) -> str:
    """The config key behind a dotted fingerprint path (`sampling.seed` -> `training.seed`)."""
    for prefix in (path, path.split(".")[0]):
        if prefix in _CONFIG_KEY:
            return _CONFIG_KEY[prefix] + path[len(prefix) :]
    return path


def check_resumable(previous: dict | None, config: Config, output: str) -> None:
    """A one-line InputError naming the config key of the first setting that differs from the run
    the split was collected with (nothing to compare with: fine)."""
    old = previous.get("fingerprint") if previous else None
    if isinstance(old, dict):
        check_same_settings(
            old,
            fingerprint(config),
            f"{output}: was collected with",
            "pass --overwrite to start the split over, or choose another --dataset-dir",
        )


def check_same_settings(was: dict, now: dict, subject: str, remedy: str) -> None:
    """The one refusal of `collect` and `train` to continue a run with other settings: an
    InputError naming the config key of the first setting that differs (`subject` says whose)."""
    difference = first_difference(was, now)
    if difference:
        key, old, new = difference
        raise InputError(f"{subject} {config_key(key)} = {old!r}, this run has {new!r}; {remedy}")


def first_difference(old: Any, new: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """(dotted key, old value, new value) of the first setting that differs, None when none does."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*new, *(k for k in old if k not in new)]:
            found = first_difference(old.get(key), new.get(key), f"{path}.{key}" if path else key)
            if found:
                return found
        return None
    return None if old == new else (path, old, new)


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
