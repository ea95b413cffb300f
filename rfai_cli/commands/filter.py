"""`rfai filter`: Select rows of a dataset file by score, language, top-k; dedupe; drop secrets."""

from __future__ import annotations

import os
import sys
from enum import Enum
from functools import partial
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from ..errors import InputError
from ..records import SAMPLE_SOURCES
from .common import CarefulOption, ConfigOption, QuietOption, SkipWarnings, StrictOption, reject_broken_config


class OutputFormat(str, Enum):
    jsonl = "jsonl"
    mlx_lm = "mlx-lm"


SampleSource = Enum("SampleSource", {name: name for name in SAMPLE_SOURCES}, type=str)


def _bound(flag: str, what: str) -> object:
    return typer.Option(flag, metavar="X", help=f"Keep rows whose {what}.", show_default=False)


def filter_rows(
    source: Annotated[
        str,
        typer.Argument(
            metavar="FILE", help="Dataset file (.jsonl, .jsonl.gz, .parquet), dataset directory, or - for stdin."
        ),
    ] = "-",
    output: Annotated[
        str, typer.Option("--output", "-o", metavar="OUT|-", help="Where kept rows go (- for stdout).")
    ] = "-",
    min_student_score: Annotated[Optional[float], _bound("--min-student-score", "student_score >= X")] = None,
    max_student_score: Annotated[Optional[float], _bound("--max-student-score", "student_score <= X")] = None,
    min_teacher_score: Annotated[Optional[float], _bound("--min-teacher-score", "teacher_score >= X")] = None,
    max_teacher_score: Annotated[Optional[float], _bound("--max-teacher-score", "teacher_score <= X")] = None,
    min_reward: Annotated[Optional[float], _bound("--min-reward", "reward >= X")] = None,
    max_reward: Annotated[Optional[float], _bound("--max-reward", "reward <= X")] = None,
    language: Annotated[
        Optional[List[str]],
        typer.Option("--language", "-l", help="Keep this language (repeatable).", show_default=False),
    ] = None,
    split: Annotated[
        Optional[List[str]], typer.Option("--split", help="Keep this split (repeatable).", show_default=False)
    ] = None,
    sample_source: Annotated[
        Optional[List[SampleSource]],
        typer.Option(
            "--sample-source",
            help="Keep rows written by the student or by the teacher (a train run's teacher samples).",
            show_default=False,
        ),
    ] = None,
    top_k: Annotated[
        Optional[int],
        typer.Option("--top-k", metavar="N", help="Keep only the N rows with the highest --by.", show_default=False),
    ] = None,
    by: Annotated[str, typer.Option("--by", metavar="FIELD", help="Numeric field that --top-k ranks by.")] = "reward",
    dedupe: Annotated[
        bool,
        typer.Option(
            "--dedupe", help="One row per language and normalised student code: the one with the highest reward."
        ),
    ] = False,
    drop_secrets: Annotated[
        bool, typer.Option("--drop-secrets", help="Drop rows holding API keys, tokens or private keys.")
    ] = False,
    redact_secrets: Annotated[
        bool, typer.Option("--redact-secrets", help="Replace API keys, tokens and private keys with [REDACTED:<kind>].")
    ] = False,
    output_format: Annotated[
        OutputFormat,
        typer.Option(
            "--format",
            help="jsonl: the rows as they are; mlx-lm: chat rows for `mlx_lm.lora --data` "
            "(-o DIR/ writes train/valid/test.jsonl).",
        ),
    ] = OutputFormat.jsonl,
    quiet: QuietOption = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="The kept/dropped summary as one JSON line (on stderr when rows go to stdout)."),
    ] = False,
    strict: StrictOption = False,
    careful: CarefulOption = False,
    config: ConfigOption = None,
) -> None:
    """Select rows of a dataset file by score, language, top-k; dedupe; drop secrets."""
    reject_broken_config(config)
    from ..data.filter import FilterSpec, filter_rows

    run_filter = partial(filter_rows, careful=careful)

    if drop_secrets and redact_secrets:
        raise InputError("--drop-secrets and --redact-secrets exclude each other")
    if source == "-" and sys.stdin.isatty():  # nothing piped in: say so instead of waiting silently
        raise InputError("no input: give a FILE, or pipe rows in (rfai filter - < rows.jsonl)")
    bounds = {
        "student_score": (min_student_score, max_student_score),
        "teacher_score": (min_teacher_score, max_teacher_score),
        "reward": (min_reward, max_reward),
    }
    spec = FilterSpec(
        minimum={name: low for name, (low, _) in bounds.items() if low is not None},
        maximum={name: high for name, (_, high) in bounds.items() if high is not None},
        languages=frozenset(language or ()),
        splits=frozenset(split or ()),
        sources=frozenset(choice.value for choice in sample_source or ()),
        top_k=top_k,
        by=by,
        dedupe=dedupe,
        secrets="drop" if drop_secrets else "redact" if redact_secrets else "keep",
        needs_code=output_format is OutputFormat.mlx_lm,
    )
    warnings = SkipWarnings()
    chat = output_format is OutputFormat.mlx_lm
    try:
        if chat and (output.endswith("/") or Path(output).is_dir()):
            report = _to_chat_directory(source, Path(output), spec, strict, warnings, run_filter)
        elif output == "-":
            report = run_filter(source, _sink(sys.stdout.buffer, chat), spec, strict=strict, on_skip=warnings)
            sys.stdout.buffer.flush()
        else:
            report = _to_file(source, Path(output), spec, strict, warnings, run_filter, chat)
    except BrokenPipeError:
        # The reader (head, jq) has had enough; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    warnings.finish()
    if as_json:
        from ..console import print_json

        print_json(report.as_dict(), to_stderr=output == "-")
    elif not quiet:
        print(f"filter: {report.summary()}", file=sys.stderr)


def _to_file(source, path: Path, spec, strict, warnings, run_filter, chat: bool):
    """Written beside OUT and renamed when done (a device or FIFO is written through): a failed or
    interrupted run leaves OUT as it was."""
    from ..output import open_output

    with open_output(path) as stream:
        return run_filter(source, _sink(stream, chat), spec, strict=strict, on_skip=warnings)


def _to_chat_directory(source, directory: Path, spec, strict, warnings, run_filter):
    from ..data.export import ChatDirectory
    from ..data.layout import implied_split

    sink = ChatDirectory(directory, implied_split(source))
    report = run_filter(source, sink, spec, strict=strict, on_skip=warnings)
    sink.close()
    return report


def _sink(stream, chat: bool):
    from ..data.export import ChatRows

    return ChatRows(stream) if chat else stream
