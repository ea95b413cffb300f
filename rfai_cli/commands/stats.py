"""`rfai stats`: Statistics of dataset files: scores, rewards, languages, splits."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from ..console import print_json
from ..errors import InputError
from .common import (
    CarefulOption,
    ConfigOption,
    JsonOption,
    QuietOption,
    SkipWarnings,
    StrictOption,
    reject_broken_config,
)

_FIGURES = ("count", "mean", "std", "min", "p10", "median", "p90", "max")
_SCORES = ("student_score", "teacher_score", "reward")
_SHORT = {"student_score": "student", "teacher_score": "teacher", "reward": "reward"}


def stats(
    files: Annotated[
        List[str],
        typer.Argument(
            metavar="FILE...",
            help="Dataset files (.jsonl, .jsonl.gz, .parquet), dataset directories, hf://datasets/OWNER/NAME on"
            " the Hub, or - for stdin.",
            show_default=False,
        ),
    ],
    by: Annotated[
        Optional[List[str]],
        typer.Option(
            "--by",
            metavar="FIELD",
            help="Group by a row field (step, split, language, run_id, ...), `file`, or `model` (base model"
            " + adapter); repeatable. Default: language and split.",
            show_default=False,
        ),
    ] = None,
    pass_at: Annotated[
        str,
        typer.Option(
            "--pass-at", metavar="K,K...", help="pass@k over each task's samples (unbiased estimator), e.g. 1,5,10."
        ),
    ] = "1",
    compare: Annotated[
        Optional[str],
        typer.Option(
            "--compare",
            metavar="FIELD",
            help="Compare the groups of FIELD (file, model, step, ...) with the first by the paired difference"
            " of pass@k over the tasks both sampled, with its standard error.",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
    strict: StrictOption = False,
    careful: CarefulOption = False,
    config: ConfigOption = None,
) -> None:
    """Statistics of dataset files: scores, rewards, languages, splits, test pass rates, pass@k."""
    reject_broken_config(config)
    from ..data.stats import DEFAULT_BY, compute_stats

    ks = _parse_ks(pass_at)
    warnings = SkipWarnings()
    files = [_local(source) for source in files]
    by = by or ([] if compare else list(DEFAULT_BY))
    result = compute_stats(files, by=by, strict=strict, on_skip=warnings, pass_at=ks, careful=careful, compare=compare)
    warnings.finish()
    skipped = result["skipped"]
    if not result["rows"] and skipped["total"]:
        raise InputError(f"no valid rows: {skipped['total']} lines skipped, the first: {skipped['examples'][0]}")
    _check_fields([*by, *([compare] if compare else [])], result)
    if json_output:
        print_json(result)
    elif not quiet:  # quiet: a check that the files read, its answer the exit status and the warnings
        _render(result)


def _local(source: str) -> str:
    """A Hub dataset (`hf://datasets/OWNER/NAME`) as its downloaded directory; anything else as given."""
    from ..data.layout import HUB_DATASET

    if not source.startswith(HUB_DATASET):
        return source
    from ..data.hub import downloaded_dataset

    return str(downloaded_dataset(source))


def _check_fields(by: List[str], result: dict) -> None:
    """A `--by` field that no row has and that is not a record field is a typo, not a group:
    say so instead of putting every row under "(none)"."""
    from ..data.stats import DERIVED_FIELDS, FILE, MISSING, MODEL
    from ..records import FIELD_TYPES

    for field in by:
        if result["rows"] and set(result["by"].get(field, {})) <= {MISSING} and field not in FIELD_TYPES:
            known = ", ".join([*DERIVED_FIELDS, *FIELD_TYPES])
            raise InputError(
                f"--by {field}: no row has that field (a record's fields, and {FILE} and {MODEL}: {known})"
            )


def _parse_ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(dict.fromkeys(int(part) for part in text.split(",") if part.strip()))
    except ValueError:
        ks = ()
    if not ks or min(ks) < 1:
        raise typer.BadParameter(
            f"expected whole numbers of 1 or more separated by commas, got '{text}'", param_hint="--pass-at"
        )
    return ks


def _fmt(value: object) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _difference(figure: dict) -> str:
    if figure["difference"] is None:
        return "-"
    spread = "" if figure["standard_error"] is None else f" ± {figure['standard_error']:.3f}"
    return f"{figure['difference']:+.3f}{spread}"


def _show(console, title: str, headers: list[str], rows: list[list[str]]) -> None:
    """A table where it fits the terminal; else each row on its own line(s) as `label: header
    value, ...`, so a number is never cut short (a 60-column terminal cut 0.750 to `0.7…`)."""
    from rich.box import SIMPLE_HEAVY
    from rich.measure import Measurement
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=SIMPLE_HEAVY, pad_edge=False)
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    if Measurement.get(console, console.options.update_width(1 << 16), table).maximum <= console.width:  # uncut width
        console.print(table)
        return
    console.print(title, highlight=False, markup=False)
    for label, *cells in rows:
        pairs = ", ".join(f"{header.replace(chr(10), ' ')} {cell}" for header, cell in zip(headers[1:], cells))
        console.print(f"  {label}: {pairs}", highlight=False, markup=False)


def _render_comparison(console, compared: dict) -> None:
    field, groups = compared["field"], compared["groups"]
    if not groups:
        console.print(f"--compare {field}: fewer than two groups with tested samples: nothing to compare")
        return
    ks = [k for k in next(iter(groups.values())) if k.isdigit()]
    _show(
        console,
        f"Against {field} {compared['baseline']}, paired by task",
        [field, "tasks", *(f"Δ pass@{k}\n± s.e." for k in ks)],
        [[label, str(entry["tasks"]), *(_difference(entry[k]) for k in ks)] for label, entry in groups.items()],
    )


def _render(result: dict) -> None:
    from ..console import stdout

    console = stdout()
    files = ", ".join(item["path"] for item in result["files"])
    console.print(f"[bold]{result['rows']}[/bold] rows in {files}")
    scored = [name for name in _SCORES if result[name]["count"]]
    if scored:
        rows = [[_SHORT[name], *(_fmt(result[name].get(figure)) for figure in _FIGURES)] for name in scored]
        _show(console, "Scores", ["field", *_FIGURES], rows)
    elif result["rows"]:
        console.print("no scores in these rows (a prompt file?): counts only")

    for field, groups in result["by"].items():
        headers = [field, "rows", *(f"mean\n{_SHORT[name]}" for name in scored)]
        if "reward" in scored:
            headers.append("median\nreward")
        with_tests = any("tests" in group for group in groups.values())
        if with_tests:
            headers.append("tests\npassed")
        # pass@k per group: pooled over groups (steps, runs), one figure would hide the difference
        ks = (
            [k for k in result.get("pass_at_k", {}) if k.isdigit()]
            if any("pass_at_k" in g for g in groups.values())
            else []
        )
        headers += [f"pass@{k}" for k in ks]
        rows = []
        for label, group in groups.items():
            cells = [label, str(group["rows"])] + [_fmt(group[name].get("mean")) for name in scored]
            if "reward" in scored:
                cells.append(_fmt(group["reward"].get("median")))
            if with_tests:
                cells.append(_fmt(group.get("tests", {}).get("student_pass_rate")))
            rows.append(cells + [_fmt(group.get("pass_at_k", {}).get(k)) for k in ks])
        _show(console, f"By {field}", headers, rows)

    if "compare" in result:
        _render_comparison(console, result["compare"])

    for name, histogram in result["histograms"].items():
        console.print(f"[bold]{name}[/bold] distribution")
        peak = max(histogram["counts"]) or 1
        edges = histogram["edges"]
        for low, high, count in zip(edges, edges[1:], histogram["counts"]):
            bar = "█" * round(30 * count / peak)
            console.print(f"  {low:5.2f} – {high:5.2f} │{bar:<30}│ {count}", highlight=False)

    tests = result.get("tests")
    if tests:
        console.print(
            f"tests: student passed {tests['student_passed']}/{tests['student_total']} "
            f"({_fmt(tests['student_pass_rate'])}), teacher passed {tests['teacher_passed']}/{tests['teacher_total']} "
            f"({_fmt(tests['teacher_pass_rate'])}) over {tests['rows']} rows with test results"
        )
    passes = result.get("pass_at_k")
    if passes:
        figures = ", ".join(f"pass@{k} {_fmt(v)}" for k, v in passes.items() if k.isdigit())
        console.print(f"{figures} over {passes['tasks']} tasks ({passes['samples']} samples)", highlight=False)
    sources = result.get("correctness_sources")
    if sources:
        counted = ", ".join(f"{n} {name}" for name, n in sources.items())
        console.print(f"student correctness from: {counted}; {result['unassessed']} unassessed", highlight=False)
    verdicts = result.get("verdicts")
    if verdicts and verdicts.get("inside"):
        console.print(
            f"test verdicts: {verdicts.get('outside', 0)} rows decided outside the sandbox, "
            f"{verdicts['inside']} partly inside it (weaker: decided by the answer's own code)",
            highlight=False,
        )
    skipped = result["skipped"]
    if skipped["total"]:
        reasons = ", ".join(f"{n} {reason}" for reason, n in skipped["reasons"].items())
        console.print(f"skipped {skipped['total']} lines: {reasons}", highlight=False)
