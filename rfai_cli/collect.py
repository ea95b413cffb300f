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
from .records import JsonlWriter, new_record, read_rows
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
                "split over, or pick another --output-dir"
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
    on_batch: Callable[[BatchReport], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> CollectSummary:
    """Generate, score and append rows for every task of `work`; returns what was written.

    `on_notice` gets one-line warnings: a weak teacher, a reference solution failing its own tests."""
    from .engine.generation import SamplingSettings, chat_prompt, generate_samples, seed_sampling
    from .engine.loading import load_model
    from .scoring import Scorer
    from .teachers import build_teacher
    from .teachers.build import weak_teacher_notice

    notice = on_notice or (lambda _message: None)
    student = load_model(config.model.base_model, config.model.adapter_path)
    seed_sampling(config.training.seed)
    teacher = build_teacher(config, student)  # a missing API key fails here, before any generation
    weak = weak_teacher_notice(teacher, [task for task, _ in work.todo])
    if weak:
        notice(weak)
    failing_references: set[str] = set()
    sampling = SamplingSettings.from_config(config.training)
    run_id = uuid.uuid4().hex[:12]
    summary = CollectSummary(work.output, len(work.todo) + work.already_done, work.already_done)
    started = time.perf_counter()
    provenance = {"split": split, "student_model": student.name, "teacher_model": teacher.model, "run_id": run_id}
    append_run(
        work.output.parent,
        run_record(
            config,
            command="collect",
            split=split,
            run_id=run_id,
            student_model=student.name,
            teacher_model=teacher.model,
            samples=samples,
        ),
    )

    judge = teacher if teacher.judge_enabled else None
    with (
        teacher,
        Scorer(config.scoring, judge=judge, on_notice=notice) as scorer,
        JsonlWriter(work.output, replace=work.overwrite) as writer,
        ThreadPoolExecutor(1, thread_name_prefix="rfai-collect") as background,
    ):
        pending: tuple[Future, int] | None = None

        def finish(job: tuple[Future, int]) -> None:
            future, n_tasks = job
            rows = future.result()
            writer.write_many(rows)
            summary.rows_written += len(rows)
            for message in failing_reference_notices(rows, failing_references):
                notice(message)
            if on_batch:
                on_batch(BatchReport(n_tasks, rows))

        for batch in batches(work.todo, prompts_per_batch):
            references = teacher.references(
                [(task.prompt, task.language, task.canonical_solution) for task, _ in batch]
            )
            prompts, counts = [], []
            for task, indices in batch:
                prompts.append(chat_prompt(student.tokenizer, task.prompt, task.language))
                counts.append(len(indices))
            generated = generate_samples(student, prompts, max(counts), sampling)
            answers = [[sample.text for sample in group[:count]] for group, count in zip(generated, counts)]
            if pending:
                finish(pending)
            pending = (background.submit(score_batch, scorer, batch, answers, references, provenance), len(batch))
        if pending:
            finish(pending)
    summary.seconds = time.perf_counter() - started
    return summary


def score_batch(
    scorer,
    batch: Sequence[tuple[PromptTask, list[int]]],
    answers: list[list[str]],
    references: Sequence,
    provenance: dict,
) -> list[dict]:
    """Score one batch (students and teacher alike) and build its dataset rows, in task then sample order.

    `references` are the teacher's answers (`TeacherAnswer`); `provenance` holds the fields every
    row of the run shares (split, models, run_id).
    """
    from .scoring import ScoreItem, extract_code, fill_record

    items = [
        ScoreItem(task_row(task), texts, ref.code or None) for (task, _), texts, ref in zip(batch, answers, references)
    ]
    rows = []
    for (task, indices), texts, ref, result in zip(batch, answers, references, scorer.score_many(items)):
        for position, (index, text) in enumerate(zip(indices, texts)):
            record = new_record(
                prompt=task.prompt,
                language=task.language,
                student_code=extract_code(text, task.language),
                teacher_code=ref.code,
            )
            fill_record(record, result, position)
            record.update(
                provenance,
                task_id=task.task_id,
                sample_index=index,
                tests=task.tests or None,
                entry_point=task.entry_point,
                teacher_model=ref.model or provenance["teacher_model"],
            )
            if ref.error:
                record["score_sources"]["teacher"] = {"reference": f"fallback: {ref.error}"}
            rows.append(record)
    return rows


def failing_reference_notices(rows: Sequence[dict], reported: set[str]) -> list[str]:
    """One warning per task whose own reference solution fails its tests (each task once: `reported`)."""
    from .teachers.teacher import KNOWN_SOLUTION

    messages = []
    for row in rows:
        results = (row.get("test_results") or {}).get("teacher") or {}
        if row.get("teacher_model") != KNOWN_SOLUTION or row["task_id"] in reported:
            continue
        if results.get("passed", 0) < results.get("total", 0):
            reported.add(row["task_id"])
            messages.append(
                f"task {row['task_id']}: its reference solution passes {results['passed']} of "
                f"{results['total']} of its own tests ({results.get('reason', 'no reason given')})"
            )
    return messages


def task_row(task: PromptTask) -> dict:
    """The prompt row the scorer reads: prompt, language, tests and entry point."""
    return {"prompt": task.prompt, "language": task.language, "tests": task.tests, "entry_point": task.entry_point}


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
        "dataset": dataset,
    }
