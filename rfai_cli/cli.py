"""The `rfai` entry point: one Typer app; each subcommand lives in rfai_cli/commands/."""

from __future__ import annotations

import sys

import typer

from . import __version__
from .commands import card, collect, filter as filter_cmd, score, stats, train, upload
from .errors import RfaiError

app = typer.Typer(
    name="rfai",
    help="Fine-tune small code models with RL from AI feedback in MLX, and turn what they generate into datasets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

app.command("train")(train.train)
app.command("collect")(collect.collect)
app.command("card")(card.card)
app.command("upload")(upload.upload)
app.command("stats")(stats.stats)
app.command("filter")(filter_cmd.filter_rows)
app.command("score")(score.score)


def _version(value: bool) -> None:
    if value:
        print(f"rfai {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    pass


def main() -> None:
    """Console-script entry: user errors become one line on stderr and a non-zero exit, never a traceback."""
    try:
        app()
    except RfaiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
