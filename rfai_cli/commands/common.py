"""Options shared by several subcommands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

ConfigOption = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="YAML config (default: ./config.yaml when present).", show_default=False),
]
StrictOption = Annotated[bool, typer.Option("--strict", help="Stop at the first malformed line instead of skipping it.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one machine-readable JSON object instead of tables.")]
