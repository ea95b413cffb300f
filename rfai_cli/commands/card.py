"""`rfai card`: Write DIR/README.md, a Hugging Face dataset card."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import ConfigOption, JsonOption, QuietOption, SetOption, SkipWarnings


def card(
    directory: Annotated[
        Optional[Path],
        typer.Argument(
            metavar="DIR", help="Dataset directory (default: huggingface.dataset_output_dir).", show_default=False
        ),
    ] = None,
    repo_id: Annotated[
        Optional[str],
        typer.Option(
            "--repo-id",
            help="Hub dataset id for the usage example (default: huggingface.dataset_repo_id).",
            show_default=False,
        ),
    ] = None,
    pretty_name: Annotated[
        Optional[str],
        typer.Option(
            "--pretty-name", help="The card's title (default: from --repo-id, else the directory).", show_default=False
        ),
    ] = None,
    license: Annotated[
        Optional[str],
        typer.Option(
            "--license", help="License id (default: the existing card's, else apache-2.0).", show_default=False
        ),
    ] = None,
    config: ConfigOption = None,
    assignments: SetOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Write DIR/README.md, a Hugging Face dataset card."""
    from ..config import load_config

    settings = load_config(config, assignments=assignments or ())
    from ..data.card import write_card

    warnings = SkipWarnings()
    path = write_card(
        directory or Path(settings.huggingface.dataset_output_dir),
        repo_id=repo_id,
        config=settings,
        license=license,
        pretty_name=pretty_name,
        on_skip=warnings,
    )
    warnings.finish()
    if warnings.count:
        print(
            "warning: datasets.load_dataset fails on malformed lines; clean the files with `rfai filter IN -o OUT` first",
            file=sys.stderr,
        )
    if as_json:
        from ..console import print_json

        print_json({"card": str(path)})
    elif not quiet:
        print(path)
