"""How typer's help and usage errors look: adapters over typer 0.29's rich output, applied once by cli.py.

Each adapter leaves typer alone when the hook it wraps is not there (another typer version).
"""

from __future__ import annotations

import sys


def apply() -> None:
    _plain_metavars()
    _help_that_folds()
    _usage_errors_on_one_line()


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
