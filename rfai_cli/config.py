"""The one config loader: YAML (safe load) -> validated, typed settings, with CLI overrides.

Every command calls `load_config`. The models below are the schema; `config.example.yaml`
shows every key with its default, and a test keeps the two in step.
"""

from __future__ import annotations

import difflib
import math
import re
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from . import DEFAULT_CONFIG_FILE, yaml_input
from .errors import ConfigError

DAY = 86_400.0  # no single program, request or backoff may be given longer than a day
MAX_MB = 1 << 20  # 1 TiB: beyond any machine, and within every OS's limit arithmetic


class _Section(BaseModel):
    # inf and nan are not numbers a setting can mean (`--timeout inf` would overflow the sandbox)
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class ModelSettings(_Section):
    base_model: str | None = None
    adapter_path: str | None = None
    # Passed to the chat template of the student and a local teacher (mlx-lm's --chat-template-config).
    chat_template_args: dict[str, Any] = Field(default_factory=dict)
    # A quantized model's weights as stored (true) or dequantized (false); null: the faster for the
    # device, which is dequantized float32 on CPU and as stored on a GPU (docs/models.md).
    keep_quantized: bool | None = None


class TeacherSettings(_Section):
    # auto: a task's own reference solution when it has one, else the local mlx model;
    # reference: only tasks' reference solutions (no model at all).
    provider: Literal["auto", "reference", "mlx", "openai", "anthropic"] = "auto"
    model_name: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None  # the NAME of the variable that holds the key
    max_concurrency: int = Field(4, ge=1, le=1024)
    timeout: float = Field(120, gt=0, le=DAY)
    max_retries: int = Field(3, ge=0, le=100)
    retry_backoff: float = Field(1.0, ge=0, le=3600)
    max_tokens: int = Field(512, ge=1)
    temperature: float = Field(0.0, ge=0)
    judge: bool = False
    write_tests: bool = True  # a prompt without tests gets the teacher's (scoring/written_tests.py)
    cache_dir: str | None = None

    @field_validator("api_key_env")
    @classmethod
    def _a_variable_name_not_a_key(cls, name: str | None) -> str | None:
        # A key pasted here would be echoed by "variable ... is not set" into terminals and CI logs.
        if name is not None and _looks_like_a_key(name):
            raise ValueError(
                "takes the name of the environment variable that holds the key (such as OPENAI_API_KEY), and this "
                "value looks like a key itself (not shown): put the key in the environment, and rotate it if this "
                "file was shared"
            )
        return name


def _looks_like_a_key(text: str) -> bool:
    """Not a variable name, a credential the secret scan knows, or long random-looking letters and digits."""
    from .secrets import find_secrets

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text) or find_secrets(text):
        return True
    return len(text) >= 20 and any(c.isdigit() for c in text) and any(c.islower() for c in text)


class TrainingSettings(_Section):
    num_samples_per_prompt: int = Field(4, ge=1)
    batch_size: int = Field(2, ge=1)
    generation_temperature: float = Field(0.8, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    max_new_tokens: int = Field(256, ge=1)
    learning_rate: float = Field(1e-4, gt=0)  # what learns on the starter curriculum (docs/train.md)
    warmup_steps: int = Field(10, ge=0)
    max_steps: int = Field(100, ge=1)
    epochs: int = Field(10, ge=1)  # enough that max_steps, not the data, ends a default run
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_grad_norm: float = Field(1.0, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    kl_beta: float = Field(0.04, ge=0)
    target_kl: float | None = Field(None, gt=0)
    kl_gain: float = Field(0.1, ge=0, le=10)
    distill_weight: float = Field(0.0, ge=0)
    # The teacher's answer as one more sample of a group (train/guidance.py).
    teacher_in_group: Literal["never", "failing", "always"] = "always"  # docs/train.md: the experiment
    teacher_shaping_gamma: float = Field(0.1, gt=0)
    loss_type: Literal["grpo", "dr_grpo", "dapo"] = "grpo"
    scale_rewards: Literal["group", "batch", "none"] = "group"
    epsilon: float = Field(0.2, gt=0, lt=1)
    epsilon_high: float | None = Field(None, gt=0)
    num_iterations: int = Field(1, ge=1)
    mask_truncated_completions: bool = False
    max_nonfinite_steps: int = Field(3, ge=1)
    # On several ranks: how long one waits at a collective for the others before the run stops.
    rank_timeout: float = Field(1800, gt=0, le=DAY)
    lora_rank: int = Field(8, ge=1)
    lora_alpha: float = Field(16, gt=0)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    lora_layers: int = Field(8, ge=1)
    checkpoint_dir: str = "./checkpoints"
    checkpoint_every: int = Field(10, ge=1)
    save_total_limit: int | None = Field(3, ge=1)
    report_to: list[Literal["tensorboard", "wandb"]] = Field(default_factory=list)
    log_completions: int = Field(0, ge=0, le=64)  # samples shown each step (terminal, TensorBoard, wandb)
    eval_steps: int = Field(10, ge=0)
    eval_samples: int = Field(2, ge=1)
    eval_limit: int | None = Field(None, ge=1)
    seed: int = 0

    @field_validator("report_to", mode="before")
    @classmethod
    def _one_sink_or_a_list(cls, value: Any) -> Any:
        # As TRL's report_to: one name, or "none"; a list stays a list.
        if isinstance(value, str):
            return [] if value == "none" else [value]
        return value


class RubricWeights(_Section):
    correctness: float = Field(0.3, ge=0, le=1)
    code_quality: float = Field(0.3, ge=0, le=1)
    efficiency: float = Field(0.2, ge=0, le=1)
    documentation: float = Field(0.2, ge=0, le=1)


class ScoringSettings(_Section):
    weights: RubricWeights = RubricWeights()
    reward_floor: float = Field(0.05, gt=0)
    reward_cap: float = Field(2.0, gt=0)
    judge_weight: float = Field(0.5, ge=0, le=1)
    timeout: float = Field(10, gt=0, le=DAY)
    memory_mb: int = Field(1024, ge=64, le=MAX_MB)
    workers: int | None = Field(None, ge=1, le=256)
    compile_timeout: float = Field(60, gt=0, le=DAY)
    compile_memory_mb: int = Field(4096, ge=256, le=MAX_MB)

    @field_validator("weights")
    @classmethod
    def _weights_sum_to_one(cls, weights: RubricWeights) -> RubricWeights:
        total = sum(weights.model_dump().values())
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"the rubric weights must sum to 1, they sum to {total:g}")
        return weights


class DataSettings(_Section):
    train_prompts: str | None = "starter"
    validation_prompts: str | None = None
    evaluation_prompts: str | None = None


class HuggingFaceSettings(_Section):
    upload_datasets: bool = False
    dataset_repo_id: str | None = None
    save_datasets_locally: bool = True
    dataset_output_dir: str = "./datasets"
    private: bool = False

    @field_validator("dataset_repo_id")
    @classmethod
    def _a_hub_repo_id(cls, repo_id: str | None) -> str | None:
        # Checked here, not at the end of a long train run, whose last step writes the card with it.
        from .repo_ids import repo_id_problem

        problem = repo_id and repo_id_problem(repo_id)
        if problem:
            raise ValueError(problem)
        return repo_id

    @field_validator("save_datasets_locally")
    @classmethod
    def _rows_stay_on_disk(cls, keep: bool) -> bool:
        # The seed guide's key, kept so its configs load; there is no run without local rows.
        if not keep:
            raise ValueError(
                "false is not supported: the local splits are what resume continues from and what the upload "
                "sends; to keep nothing locally, upload, then delete huggingface.dataset_output_dir"
            )
        return keep

    @model_validator(mode="after")
    def _an_upload_names_its_repo(self) -> "HuggingFaceSettings":
        if self.upload_datasets and not self.dataset_repo_id:
            raise ValueError(
                "upload_datasets is true but dataset_repo_id is not set: name the repo (OWNER/NAME) or set "
                "upload_datasets: false"
            )
        return self


class Config(_Section):
    model: ModelSettings = ModelSettings()
    teacher: TeacherSettings = TeacherSettings()
    training: TrainingSettings = TrainingSettings()
    scoring: ScoringSettings = ScoringSettings()
    data: DataSettings = DataSettings()
    huggingface: HuggingFaceSettings = HuggingFaceSettings()
    _source: Path | None = PrivateAttr(None)

    @property
    def source(self) -> Path | None:
        """The file the settings came from; None when only defaults (and overrides) apply."""
        return self._source


def load_config(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    assignments: Sequence[str] = (),
) -> Config:
    """Read `path` (default: ./config.yaml when present), apply `--set KEY=VALUE` `assignments`,
    then dotted-key `overrides` (a command's own flags), validate.

    Overrides whose value is None are ignored, so CLI options that were not given can be
    passed straight through. Raises ConfigError with a one-line message that names the file and
    line, or `--set`, where the bad key came from.
    """
    explicit = path is not None
    path = Path(path if explicit else DEFAULT_CONFIG_FILE)
    if not explicit and not path.exists():
        raw, lines, source = {}, {}, None
    else:
        raw, lines = _read_yaml(path)
        source = path
    for dotted, value in parse_assignments(assignments).items():
        _set_dotted(raw, dotted, value)
        lines[tuple(dotted.split("."))] = SET_OPTION
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(raw, dotted, value)
            lines[tuple(dotted.split("."))] = "command line"
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, lines, source, raw)) from None
    config._source = source
    return config


SET_OPTION = "--set"  # where a key given on the command line is said to come from


def parse_assignments(assignments: Sequence[str]) -> dict[str, Any]:
    """`--set KEY=VALUE` options as dotted keys and values, each value read as YAML the way the
    file's would be (`1`, `3e-5`, `true`, `[wandb]`, `null`); the last of a repeated key wins."""
    parsed: dict[str, Any] = {}
    for item in assignments:
        key, equals, text = item.partition("=")
        key = key.strip()
        if not equals or not key or not all(part.strip() for part in key.split(".")):
            raise ConfigError(f"{SET_OPTION} {item!r}: expected KEY=VALUE, e.g. training.batch_size=1")
        try:
            parsed[key] = yaml_input.load(text)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or exc
            raise ConfigError(f"{SET_OPTION} {key}: invalid YAML value: {problem}") from None
    return parsed


def _read_yaml(path: Path) -> tuple[dict, dict[tuple, int]]:
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, expected a YAML config file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found (copy config.example.yaml to start one)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    try:
        node = yaml_input.compose(text)
        data = yaml_input.construct(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the config must be a mapping of sections, got {type(data).__name__}")
    return data, _key_lines(node)


def _key_lines(node: yaml.Node, prefix: tuple = ()) -> dict[tuple, int]:
    """Map each key path of a composed YAML document to its 1-based line number."""
    lines: dict[tuple, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*prefix, key_node.value)
            lines[key] = key_node.start_mark.line + 1
            lines.update(_key_lines(value_node, key))
    return lines


def _set_dotted(raw: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    section = raw
    for name in parents:
        child = section.get(name)
        if not isinstance(child, dict):
            child = section[name] = {}
        section = child
    section[leaf] = value


_EXPECTED = {
    "float_parsing": "a number",
    "float_type": "a number",
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "model_type": "a mapping",
    "dict_type": "a mapping",
    "model_attributes_type": "a mapping",
}


# Keys of the config of the project rfai started from (train_rlaif.py) and where they live now.
RENAMED = {
    "rlaif.num_samples_per_prompt": "training.num_samples_per_prompt",
    "rlaif.generation_temperature": "training.generation_temperature",
    "rlaif.top_p": "training.top_p",
    "rlaif.top_k": "training.top_k",
    "rlaif.lora_r": "training.lora_rank",
    "rlaif.lora_alpha": "training.lora_alpha",
    "rlaif.kl_penalty": "training.kl_beta",
    "training.num_epochs": "training.epochs",
    "training.output_dir": "training.checkpoint_dir",
    "training.save_steps": "training.checkpoint_every",
    "data.train_file": "data.train_prompts",
    "data.eval_file": "data.evaluation_prompts",
}


def _describe(exc: ValidationError, lines: dict[tuple, int | str], source: Path | None, raw: dict | None = None) -> str:
    """One line for everything wrong: every unknown key at once (so a config written for another
    tool takes one run to fix, not dozens), else pydantic's first error, as `file:line: key.path:
    what is wrong`."""
    errors = exc.errors()
    unknown = [tuple(str(part) for part in e["loc"]) for e in errors if e["type"] == "extra_forbidden"]
    if len(unknown) == 1:
        loc = unknown[0]
        return f"{_where(loc, lines, source)}unknown key '{'.'.join(loc)}'{_hint(loc, raw)}"
    if unknown:
        items = [f"'{'.'.join(loc)}'{_line(loc, lines)}{_hint(loc, raw)}" for loc in unknown]
        return f"{source or 'config'}: {len(unknown)} unknown keys: " + "; ".join(items)
    error = errors[0]
    loc = tuple(str(part) for part in error["loc"])
    where = _where(loc, lines, source)
    key = ".".join(loc)
    value = error.get("input")
    if error["type"] in _EXPECTED:
        return f"{where}{key}: expected {_EXPECTED[error['type']]}, got {value!r}"
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}{key}: {message[0].lower()}{message[1:]}" if key else f"{where}{message}"


def _line(loc: tuple, lines: dict[tuple, int | str]) -> str:
    line = lines.get(loc)
    return "" if line is None else f" (from {line})" if isinstance(line, str) else f" (line {line})"


def _hint(loc: tuple, raw: dict | None) -> str:
    """Where a renamed key lives now, what an unknown section held, or the closest known key."""
    dotted = ".".join(loc)
    if dotted in RENAMED:
        return f" (now '{RENAMED[dotted]}')"
    section = raw.get(loc[0]) if isinstance(raw, dict) and len(loc) == 1 else None
    if isinstance(section, dict):
        moved = [f"{dotted}.{k} -> {RENAMED[f'{dotted}.{k}']}" for k in section if f"{dotted}.{k}" in RENAMED]
        if moved:
            return f" (not an rfai section; its keys that rfai has: {', '.join(moved)})"
    return _suggestion(loc)


def _where(loc: tuple, lines: dict[tuple, int | str], source: Path | None) -> str:
    for end in range(len(loc), 0, -1):
        line = lines.get(loc[:end])
        if isinstance(line, str):  # given on the command line
            return f"{line}: "
        if line is not None and source is not None:
            return f"{source}:{line}: "
    return f"{source}: " if source is not None else ""


def _suggestion(loc: tuple) -> str:
    section: type[BaseModel] = Config
    for part in loc[:-1]:
        field = section.model_fields.get(part)
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return ""
        section = field.annotation
    known = list(section.model_fields)
    close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(known)})"
