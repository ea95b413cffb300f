"""The `rfai` entry point: one Typer app; each subcommand lives in rfai_cli/commands/."""

from __future__ import annotations

import errno
import os
import sys
import traceback

import typer

from . import __version__, typer_style
from .commands import card, collect, score, stats, train, upload
from .commands import filter as filter_cmd
from .errors import RfaiError

typer_style.apply()

app = typer.Typer(
    name="rfai",
    help="Fine-tune small code models with RL from AI feedback in MLX, and turn what they generate into datasets.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Shown under each command's --help: the usual ways to call it.
EXAMPLES = {
    "train": [
        "rfai train --config config.yaml",
        "rfai train --prompts starter --max-steps 20",
        "rfai train --resume",
    ],
    "collect": [
        "rfai collect --prompts builtin --split train --samples 4",
        "rfai collect --prompts humaneval --limit 20 -d datasets",
    ],
    "card": ["rfai card datasets --repo-id you/code-rlaif"],
    "upload": [
        "rfai upload --repo-id you/code-rlaif",
        "rfai upload --repo-id you/code-rlaif --format parquet --dry-run",
    ],
    "stats": ["rfai stats datasets/train.jsonl --by language", "rfai stats datasets/evaluation.jsonl --by step --json"],
    "filter": [
        "rfai filter datasets/train.jsonl --min-reward 0.9 -o best.jsonl",
        "rfai filter datasets/train.jsonl --min-reward 1 --dedupe --format mlx-lm -o sft/",
        "cat rows.jsonl | rfai filter --language python --top-k 100",
    ],
    "score": ["rfai score rows.jsonl -o scored.jsonl", "rfai score rows.jsonl --json"],
}
COMMANDS = {
    "train": train.train,
    "collect": collect.collect,
    "card": card.card,
    "upload": upload.upload,
    "stats": stats.stats,
    "filter": filter_cmd.filter_rows,
    "score": score.score,
}
for _name, _function in COMMANDS.items():
    app.command(_name, epilog="Examples:\n\n" + "\n\n".join(f"  {line}" for line in EXAMPLES[_name]))(_function)


def _version(value: bool) -> None:
    if value:
        print(f"rfai {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    pass


def main() -> None:
    """Console-script entry: user errors become one line on stderr and a non-zero exit, never a
    traceback (RFAI_DEBUG=1 shows the traceback behind the line)."""
    try:
        try:
            app()
        finally:
            sys.stdout.flush()  # a full or closed stdout fails here, inside the handlers below
    except RfaiError as exc:
        _fail(f"error: {exc}", exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except SystemExit as exc:
        if exc.code == 130:  # typer turns Ctrl-C inside a command into a silent exit 130
            _fail("interrupted", 130)
        raise
    except BrokenPipeError:  # the reader (head, jq) has had enough: not an error
        _silence_stdout()
        sys.exit(0)
    except OSError as exc:  # a full disk or device, a vanished directory: the OS's one line
        where = f"{exc.filename}: " if exc.filename else ("stdout: " if exc.errno in _WRITE_ERRNOS else "")
        _fail(f"error: {where}{exc.strerror or exc}", 1)


_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}


def _fail(message: str, code: int) -> None:
    if os.environ.get("RFAI_DEBUG"):
        traceback.print_exc()
    print(message, file=sys.stderr)
    _silence_stdout()
    sys.exit(code)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's own final flush cannot fail again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass
