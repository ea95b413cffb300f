"""Options shared by several subcommands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import DEFAULT_CONFIG_FILE

ConfigOption = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="YAML config (default: ./config.yaml when present).", show_default=False),
]
SetOption = Annotated[
    Optional[list[str]],
    typer.Option(
        "--set",
        help="KEY=VALUE: set any config key, e.g. --set training.kl_beta=0.02 (repeatable; the value is read as YAML).",
        show_default=False,
    ),
]
DatasetDirOption = Annotated[
    Optional[Path],
    typer.Option(
        "--dataset-dir", "-d", help="Dataset directory \\[huggingface.dataset_output_dir].", show_default=False
    ),
]
# The spelling collect and train had before every command said --dataset-dir; -o is a file elsewhere.
OldDatasetDirOption = Annotated[Optional[Path], typer.Option("--output-dir", "-o", hidden=True)]


def dataset_dir_of(dataset_dir: Path | None, old_spelling: Path | None) -> Path | None:
    """The dataset directory asked for with --dataset-dir/-d, or with the hidden old --output-dir/-o."""
    if dataset_dir is not None and old_spelling is not None and dataset_dir != old_spelling:
        raise typer.BadParameter("give the dataset directory once (--dataset-dir)", param_hint="--output-dir")
    return dataset_dir if dataset_dir is not None else old_spelling


def student_and_output(
    dataset_dir: Path | None, old_spelling: Path | None, model: str | None, adapter_path: str | None, chat_args
) -> dict:
    """The config overrides that collect and train take alike: where rows go, and the student."""
    chosen = dataset_dir_of(dataset_dir, old_spelling)
    return {
        "huggingface.dataset_output_dir": str(chosen) if chosen else None,
        "model.base_model": model,
        "model.adapter_path": adapter_path,
        "model.chat_template_args": chat_args,
    }


ModelOption = Annotated[
    Optional[str], typer.Option("--model", help="Student model: an mlx-lm path or Hub id \\[model.base_model].")
]
AdapterPathOption = Annotated[
    Optional[str],
    typer.Option(
        "--adapter-path",
        metavar="DIR",
        help="LoRA adapters in mlx-lm's format to start the student from \\[model.adapter_path].",
    ),
]


def _json_object(text: str | None) -> dict | None:
    import json

    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(
            f"not JSON ({exc.msg}): give an object such as '{{\"enable_thinking\": true}}'"
        ) from None
    if not isinstance(value, dict):
        raise typer.BadParameter(f"expected a JSON object such as '{{\"enable_thinking\": true}}', got {text!r}")
    return value


ChatTemplateArgsOption = Annotated[
    Optional[dict],
    typer.Option(
        "--chat-template-args",
        metavar="JSON",
        parser=_json_object,
        help="Arguments for the chat template, e.g. '{\"enable_thinking\": true}' \\[model.chat_template_args].",
        show_default=False,
    ),
]
StrictOption = Annotated[
    bool, typer.Option("--strict", help="Stop at the first malformed line instead of skipping it.")
]
CarefulOption = Annotated[
    bool,
    typer.Option(
        "--careful",
        help="Read every line with Python's json, never DuckDB's fast path (the same answer, slower; a cross-check).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one machine-readable JSON object instead of tables.")]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="Print nothing but warnings and errors (the exit status says the rest).")
]


class SkipWarnings:
    """on_skip handler for commands: the first few skipped lines on stderr, then only a count."""

    def __init__(self, limit: int = 5):
        self.limit = limit
        self.count = 0

    def __call__(self, skip: object) -> None:
        self.count += 1
        if self.count <= self.limit:
            print(f"warning: skipped {skip}", file=sys.stderr)

    def finish(self) -> None:
        if self.count > self.limit:
            print(
                f"warning: skipped {self.count} malformed lines in all ({self.count - self.limit} not shown)",
                file=sys.stderr,
            )


def reject_broken_config(path: Optional[Path]) -> None:
    """For the commands that use no setting (stats, filter): every command rejects a broken
    config.yaml alike. With no file there is nothing to reject, and the config's schema (pydantic,
    a tenth of a second of every start) is not loaded."""
    if path is None and not Path(DEFAULT_CONFIG_FILE).exists():
        return
    from ..config import load_config

    load_config(path)
