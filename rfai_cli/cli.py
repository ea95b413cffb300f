"""The `rfai` entry point: one Typer app; each subcommand lives in rfai_cli/commands/."""

from __future__ import annotations

import errno
import os
import sys
import traceback

import typer

from . import __version__
from .commands import card, collect, score, stats, train, upload
from .commands import filter as filter_cmd
from .errors import RfaiError


def _plain_metavars() -> None:
    """Help that reads like the rest of the shell's: a flag shows no type, a value its metavar
    (or TEXT, INTEGER, FLOAT, PATH), a choice its choices, an argument only its name, and the
    usage line `FILE...` or `[DIR]`. (typer 0.29 writes `<bool>` after every flag, `<str>` after
    every argument and `{FILE...}...` in usage; older ones did not.)"""
    from typer import core

    if not hasattr(core.TyperOption, "display_type_rich"):
        return
    typed = core.TyperOption.display_type_rich
    plain = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "path": "PATH"}
    plain |= {"int range": "INTEGER", "float range": "FLOAT"}

    def option_type(self, ctx):
        if self.metavar is not None or self.is_flag or self.count:
            return self.metavar
        label = str(typed(self, ctx)).strip("<>.").removeprefix("list[").removesuffix("]")
        return plain.get(label, f"[{label}]" if "|" in label else label.upper())

    core.TyperOption.display_type_rich = option_type
    # `INTEGER [x>=1]`: the range cost a fifth of an 80-column help line; a value out of it is an error saying so.
    core.TyperOption._get_number_range_help_str = lambda self: None
    core.TyperArgument.display_type_rich = lambda self, ctx: None  # its name column says it

    def usage_name(self):
        name = self.metavar or self.name.upper()
        if self.metavar is None and self.nargs != 1:
            name += "..."
        return name if self.required else f"[{name}]"

    core.TyperArgument._usage_display_name = usage_name


_plain_metavars()


def _help_that_folds() -> None:
    """At 80 columns a help word longer than its column (`[training.num_samples_per_prompt]`,
    a path) was cut to `[training.num_samp…`; folded, nothing of it is lost."""
    from rich.text import Text
    from typer import rich_utils

    if not hasattr(rich_utils, "_get_parameter_help"):
        return
    build = rich_utils._get_parameter_help

    def parameter_help(*args, **kwargs):
        columns = build(*args, **kwargs)
        for item in columns.renderables:
            if isinstance(item, Text):
                item.overflow = "fold"
        return columns

    rich_utils._get_parameter_help = parameter_help


_help_that_folds()


def _usage_errors_on_one_line() -> None:
    """A usage error (unknown option, bad value) is typer's boxed panel on a terminal; in a pipe or
    a CI log it is one `error: ...` line, unwrapped, like every other error of rfai."""
    from typer import rich_utils

    boxed = rich_utils.rich_format_error

    def format_error(error) -> None:
        if sys.stderr.isatty() or error.__class__.__name__ == "NoArgsIsHelpError":
            return boxed(error)
        context = getattr(error, "ctx", None)
        hint = f" (see {context.command_path} --help)" if context is not None else ""
        print(f"error: {' '.join(error.format_message().split())}{hint}", file=sys.stderr)

    rich_utils.rich_format_error = format_error


_usage_errors_on_one_line()

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
