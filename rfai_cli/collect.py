"""`collect`: generate and score student and teacher code over a prompt set, and append dataset rows.

For each batch of prompts: the teacher's references (cached per prompt), G student samples per
prompt decoded together (one shared prefill per prompt), then scoring in the sandbox. Scoring of
one batch runs in the background while the next batch generates; rows are written by this thread
only, a whole batch per write, so an interrupted run leaves only complete rows and `resume`
continues from the first task that is not complete.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from .config import Config
from .data.layout import append_run, implied_split
from .data.prompts import PromptTask
from .errors import InputError
from .records import JsonlWriter, read_rows
from .rollout import open_rollout
from .runs import run_record


@dataclass
class CollectPlan:
    """What one `collect` run will do: the tasks still missing samples, and which sample indices."""

    output: Path
    todo: list[tuple[PromptTask, list[int]]]  # (task, sample indices to generate)
    already_done: int  # tasks whose samples were all on disk
    overwrite: bool = False  # the split starts over: the old file is replaced at the first batch


@dataclass
class BatchReport:
    """What one batch added: handed to the progress display after its rows are on disk."""

    tasks: int
    rows: list[dict]


@dataclass
class CollectSummary:
    output: Path
    tasks_total: int
    tasks_skipped: int
    rows_written: int = 0
    seconds: float = 0.0
    tests_written: int = 0  # prompts without tests that got the teacher's
    tests_missing: int = 0  # ... and those left without usable tests


def plan(
    tasks: Sequence[PromptTask],
    output: Path,
    samples: int,
    config: Config,
    *,
    resume: bool = True,
    overwrite: bool = False,
) -> CollectPlan:
    """Which (task, sample index) pairs still need a row in `output`. Resuming a split collected
    with other settings (model, sampling, teacher, rubric) is a one-line error naming the first
    difference; `overwrite` starts the split over."""
    from .data.layout import last_run
    from .runs import check_resumable

    done: dict[str, set[int]] = {}
    if output.exists() and output.stat().st_size > 0 and not overwrite:
        if not resume:
            raise InputError(
                f"{output}: already holds rows; resume it (the default), pass --overwrite to start the "
                "split over, or pick another --dataset-dir"
            )
        check_resumable(last_run(output.parent, implied_split(output)), config, str(output))
        for row in read_rows(output, on_skip=lambda skip: None):
            if isinstance(row.get("task_id"), str) and isinstance(row.get("sample_index"), int):
                done.setdefault(row["task_id"], set()).add(row["sample_index"])
    todo, complete = [], 0
    for task in tasks:
        missing = [i for i in range(samples) if i not in done.get(task.task_id, ())]
        if missing:
            todo.append((task, missing))
        else:
            complete += 1
    return CollectPlan(output, todo, complete, overwrite=overwrite and output.exists())


def batches(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run_collect(
    config: Config,
    work: CollectPlan,
    *,
    split: str,
    samples: int,
    prompts_per_batch: int,
    prompt_source: str | None = None,
    on_batch: Callable[[BatchReport], None] | None = None,
    on_phase: Callable[[str], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> CollectSummary:
    """Generate, score and append rows for every task of `work`; returns what was written.

    A loop over the rollout seam: while one batch is scored in the background, the next one
    samples. `on_phase` hears what the run is doing now (loading, generating batch k of n,
    scoring), `on_batch` each batch once it is scored and written. `on_notice` gets one-line
    warnings: a weak teacher, a reference solution failing its own tests, a sandbox weaker than
    it should be."""
    notice = on_notice or (lambda _message: None)
    phase = on_phase or (lambda _text: None)
    run_id = uuid.uuid4().hex[:12]
    summary = CollectSummary(work.output, len(work.todo) + work.already_done, work.already_done)
    started = time.perf_counter()
    phase("loading the student, the teacher and the sandbox")
    with (
        open_rollout(config, tasks=[task for task, _ in work.todo], on_notice=notice) as rollout,
        JsonlWriter(work.output, replace=work.overwrite) as writer,
        ThreadPoolExecutor(1, thread_name_prefix="rfai-collect") as background,
    ):
        models = {**rollout.student.provenance, "teacher_model": rollout.teacher.model}
        provenance = {"split": split, **models, "run_id": run_id}
        append_run(
            work.output.parent,
            run_record(
                config,
                command="collect",
                split=split,
                run_id=run_id,
                **models,
                samples=samples,
                prompts=prompt_source,
            ),
        )
        pending: tuple[Future, int] | None = None

        def finish(job: tuple[Future, int]) -> None:
            future, n_tasks = job
            rows = future.result().rows
            writer.write_many(rows)
            summary.rows_written += len(rows)
            if on_batch:
                on_batch(BatchReport(n_tasks, rows))

        todo = list(batches(work.todo, prompts_per_batch))
        for number, batch in enumerate(todo, 1):
            scoring = f" (scoring batch {number - 1})" if pending else ""
            phase(f"teacher references and generation, batch {number} of {len(todo)}{scoring}")
            sampled = rollout.sample(batch)
            if pending:
                phase(f"scoring batch {number - 1} of {len(todo)}")
                finish(pending)
            pending = (background.submit(rollout.score, sampled, provenance), len(batch))
        if pending:
            phase(f"scoring batch {len(todo)} of {len(todo)}")
            finish(pending)
        summary.tests_written = sum(1 for written in rollout.written.values() if written.cases)
        summary.tests_missing = len(rollout.written) - summary.tests_written
    summary.seconds = time.perf_counter() - started
    return summary


def summarize(summary: CollectSummary, *, tasks: int) -> dict:
    """The end-of-run summary: what this run wrote, its throughput, and the whole split's statistics."""
    from .data.stats import compute_stats

    dataset = (
        compute_stats([summary.output], by=("language",), on_skip=lambda skip: None)
        if summary.output.exists()
        else None
    )
    return {
        "output": str(summary.output),
        "tasks": tasks,
        "tasks_already_done": summary.tasks_skipped,
        "rows_written": summary.rows_written,
        "seconds": round(summary.seconds, 3),
        "samples_per_second": summary.rows_written / summary.seconds if summary.seconds > 0 else 0.0,
        "prompts_with_teacher_tests": summary.tests_written,
        "prompts_without_tests": summary.tests_missing,
        "dataset": dataset,
    }
