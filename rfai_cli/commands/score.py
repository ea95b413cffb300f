"""`rfai score`: (Re)score rows that already hold code: the scoring core on its own."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..console import print_json, progress_enabled, stderr
from ..records import STDIN
from .common import ConfigOption, JsonOption, QuietOption, SetOption, StrictOption


def score(
    file: Annotated[
        str, typer.Argument(metavar="FILE", help="JSONL rows holding student_code (and teacher_code); - for stdin.")
    ],
    output: Annotated[
        str, typer.Option("--output", "-o", help="Where to write the scored rows (- for stdout); may be FILE itself.")
    ] = STDIN,
    config: ConfigOption = None,
    assignments: SetOption = None,
    strict: StrictOption = False,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
    workers: Annotated[
        Optional[int],
        typer.Option(
            "--workers", help="Programs run at once (default: scoring.workers, else CPU cores).", show_default=False
        ),
    ] = None,
    timeout: Annotated[
        Optional[float],
        typer.Option(
            "--timeout", help="Wall-clock seconds per program (default: scoring.timeout).", show_default=False
        ),
    ] = None,
) -> None:
    """(Re)score rows that already hold code: student_score, teacher_score, breakdowns, sources, test results, reward."""
    from contextlib import nullcontext

    from ..config import load_config
    from ..rollout import build_scorer
    from ..scoring.rescore import rescore
    from ..teachers import build_teacher

    settings = load_config(
        config, {"scoring.workers": workers, "scoring.timeout": timeout}, assignments=assignments or ()
    )
    # The same judge as `collect` when teacher.judge is on; a missing key fails here, before any work.
    judge = build_teacher(settings) if settings.teacher.judge else None
    err = stderr()
    on_problem = lambda text: err.print(f"warning: {text}", markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    with judge or nullcontext(), build_scorer(settings, judge, on_notice=on_problem) as scorer:
        if progress_enabled():
            with err.status("scoring...") as status:
                summary = rescore(
                    file,
                    output,
                    scorer,
                    strict=strict,
                    on_problem=on_problem,
                    on_batch=lambda s: status.update(f"scoring... {s.rows_written} rows"),
                )
        else:
            summary = rescore(file, output, scorer, strict=strict, on_problem=on_problem)
        isolation = scorer.isolation if summary.scored else []
    report = {**summary.as_dict(), "isolation": isolation}
    if json_output:
        # Rows own stdout when they are written there; the summary then goes to stderr.
        print_json(report, to_stderr=output == STDIN)
        return
    if quiet:
        return
    mean = report["mean_student_score"]
    reward = report["mean_reward"]
    err.print(
        f"scored {summary.scored} of {summary.rows_written} rows"
        + (f", {report['not_scored']} lines not scored" if report["not_scored"] else "")
        + (f"; mean student score {mean:.3f}" if mean is not None else "")
        + (f", mean reward {reward:.3f}" if reward is not None else "")
        + (f" -> {output}" if output != STDIN else ""),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
