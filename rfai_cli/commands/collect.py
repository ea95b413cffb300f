"""`rfai collect`: generate and score student and teacher code over a prompt set; write dataset splits."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import console
from ..errors import RfaiError
from .common import (
    AdapterPathOption,
    ChatTemplateArgsOption,
    ConfigOption,
    DatasetDirOption,
    JsonOption,
    ModelOption,
    OldDatasetDirOption,
    QuietOption,
    SetOption,
    SkipWarnings,
    student_and_output,
)


class Split(str, Enum):
    train = "train"
    validation = "validation"
    evaluation = "evaluation"


def collect(
    config_path: ConfigOption = None,
    assignments: SetOption = None,
    prompts: Annotated[
        Optional[str],
        typer.Option(
            "--prompts",
            "-p",
            help="A JSONL prompt file, `starter`, `builtin` or `humaneval` (default: data.<split>_prompts, else builtin).",
        ),
    ] = None,
    split: Annotated[
        Optional[Split],
        typer.Option(
            "--split",
            "-s",
            metavar="SPLIT",
            help="train, validation or evaluation: the split to collect and write (default: train; evaluation for humaneval).",
        ),
    ] = None,
    limit: Annotated[
        Optional[int], typer.Option("--limit", "-n", min=1, help="Collect at most this many prompts.")
    ] = None,
    samples: Annotated[
        Optional[int],
        typer.Option("--samples", "-G", min=1, help="Student samples per prompt \\[training.num_samples_per_prompt]."),
    ] = None,
    batch_size: Annotated[
        Optional[int], typer.Option("--batch-size", min=1, help="Prompts decoded together \\[training.batch_size].")
    ] = None,
    dataset_dir: DatasetDirOption = None,
    output_dir: OldDatasetDirOption = None,
    model: ModelOption = None,
    adapter_path: AdapterPathOption = None,
    chat_template_args: ChatTemplateArgsOption = None,
    max_new_tokens: Annotated[
        Optional[int],
        typer.Option("--max-new-tokens", min=1, help="Most tokens generated per sample \\[training.max_new_tokens]."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume/--no-resume", help="Continue an existing split file, skipping tasks already collected."),
    ] = True,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", help="Start the split over (the old file stays until the first new batch is written)."
        ),
    ] = False,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Generate and score student and teacher code over a prompt set; write dataset splits."""
    from ..collect import CollectSummary, plan, run_collect, summarize
    from ..config import load_config
    from ..data.layout import dataset_lock, split_path
    from ..data.prompts import load_prompts, prompt_source
    from ..publish import check_publishing, publish, upload_summary

    config = load_config(
        config_path,
        {
            "training.num_samples_per_prompt": samples,
            "training.batch_size": batch_size,
            "training.max_new_tokens": max_new_tokens,
            **student_and_output(dataset_dir, output_dir, model, adapter_path, chat_template_args),
        },
        assignments=assignments or (),
    )
    check_publishing(config)
    split_name, source, named_by = prompt_source(config, prompts, split.value if split else None)
    warnings = SkipWarnings()
    tasks = load_prompts(source, split_name, limit, on_skip=warnings, named_by=named_by)
    warnings.finish()
    if not tasks:
        raise typer.BadParameter(f"no prompts in {source} for split {split_name}", param_hint="--prompts")
    n = config.training.num_samples_per_prompt
    err = console.stderr()
    # Checked and held before the model loads: a file in the way or a second run fails at once.
    with dataset_lock(config.huggingface.dataset_output_dir) as directory:
        work = plan(tasks, split_path(directory, split_name), n, config, resume=resume, overwrite=overwrite)
        if work.already_done and not quiet:
            err.print(f"resuming {work.output}: {work.already_done} of {len(tasks)} prompts already collected")
        if work.todo:
            with _progress(len(work.todo), enabled=not quiet) as bar:
                summary = run_collect(
                    config,
                    work,
                    split=split_name,
                    samples=n,
                    prompts_per_batch=config.training.batch_size,
                    prompt_source=str(source),
                    on_batch=bar.update,
                    on_phase=bar.phase,
                    on_notice=lambda message: err.print(f"warning: {message}", markup=False, highlight=False),
                )
        else:
            summary = CollectSummary(work.output, len(tasks), work.already_done)
        try:
            uploaded, upload_error = publish(config, directory), None
        except RfaiError as exc:  # the rows are written: say so first, then fail (as train does)
            uploaded, upload_error = None, exc
    if as_json or not quiet:
        report = summarize(summary, tasks=len(tasks))
        report["upload"] = uploaded and upload_summary(uploaded)
        _report(report, as_json)
    if upload_error is not None:
        raise upload_error


class _progress:
    """A rich progress display on a terminal, nothing in a pipe: the bar, prompts scored and the
    ETA on one line (they fit any width), samples/s, the mean reward and the phase on the next."""

    def __init__(self, total_tasks: int, enabled: bool = True):
        self.total_tasks, self.enabled = total_tasks, enabled
        self.rewards: list[float] = []
        self.samples_done = 0
        self.rate, self.reward, self.current = 0.0, "-", "starting"

    def __enter__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        from ..progress import ProgressWithDetail

        self.bar = ProgressWithDetail(
            TextColumn("collect"),
            BarColumn(bar_width=None),
            MofNCompleteColumn(),
            TextColumn("prompts"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console.stderr(),
            expand=True,
            disable=not (self.enabled and console.progress_enabled()),
            # A batch can take minutes: the ETA comes from the whole run, not rich's last 30 s.
            speed_estimate_period=24 * 3600,
        )
        self.bar.__enter__()
        self.task = self.bar.add_task("collect", total=self.total_tasks, detail=self._detail())
        return self

    def _detail(self) -> str:
        return f"{self.rate:.2f} samples/s, mean reward {self.reward}, {self.current}"

    def phase(self, text: str) -> None:
        self.current = text
        self.bar.update(self.task, detail=self._detail())

    def update(self, report) -> None:
        self.samples_done += len(report.rows)
        self.rewards.extend(row["reward"] for row in report.rows if isinstance(row.get("reward"), (int, float)))
        self.rate = self.samples_done / (self.bar.tasks[0].elapsed or 1e-9)
        self.reward = f"{sum(self.rewards) / len(self.rewards):.3f}" if self.rewards else "-"
        self.bar.update(self.task, advance=report.tasks, detail=self._detail())

    def __exit__(self, *exc_info):
        self.bar.__exit__(*exc_info)


def _report(summary: dict, as_json: bool) -> None:
    if as_json:
        console.print_json(summary)
        return
    out = console.stdout()
    out.print(
        f"{summary['rows_written']} rows written to {summary['output']} in {summary['seconds']:.1f} s "
        f"({summary['samples_per_second']:.2f} samples/s)"
    )
    dataset = summary["dataset"]
    if dataset and dataset["rows"]:
        out.print(_table(summary["output"], dataset))
        if summary["prompts_with_teacher_tests"] or summary["prompts_without_tests"]:
            out.print(
                f"prompts without tests of their own: {summary['prompts_with_teacher_tests']} got the teacher's, "
                f"{summary['prompts_without_tests']} have none usable (score_sources.tests says why)"
            )
        unrewarded = dataset["rows"] - dataset["reward"].get("count", 0)
        if unrewarded:
            out.print(
                f"{unrewarded} of {dataset['rows']} rows have no reward: the teacher gave no answer that could "
                "be scored (see score_sources.teacher); train does not train on them"
            )
    if summary["upload"]:
        out.print(summary["upload"], highlight=False)
    else:
        directory = Path(summary["output"]).parent
        out.print(f"next: rfai stats {directory}; rfai upload --repo-id ID --dataset-dir {directory}", highlight=False)


def _table(output: str, dataset: dict):
    from rich.table import Table

    table = Table(title=f"{output}: {dataset['rows']} rows", title_justify="left")
    for column in ("language", "rows", "student score", "teacher score", "reward", "tests passed"):
        table.add_column(column, justify="left" if column == "language" else "right")
    for language, group in dataset["by"]["language"].items():
        passed = group.get("tests", {}).get("student_pass_rate")
        table.add_row(
            language,
            str(group["rows"]),
            _fmt(group["student_score"].get("mean")),
            _fmt(group["teacher_score"].get("mean")),
            _fmt(group["reward"].get("mean")),
            _fmt(passed, percent=True),
        )
    return table


def _fmt(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:.0%}" if percent else f"{value:.3f}"
