"""Options shared by several subcommands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

ConfigOption = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="YAML config (default: ./config.yaml when present).", show_default=False),
]
DatasetDirOption = Annotated[
    Optional[Path], typer.Option("--output-dir", "-o", help="Dataset directory \\[huggingface.dataset_output_dir].")
]
ModelOption = Annotated[
    Optional[str], typer.Option("--model", help="Student model: an mlx-lm path or Hub id \\[model.base_model].")
]
StrictOption = Annotated[
    bool, typer.Option("--strict", help="Stop at the first malformed line instead of skipping it.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one machine-readable JSON object instead of tables.")]


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
