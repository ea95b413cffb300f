"""The mlx provider: a local model (here the tiny random llama) answering in batches, then the cache."""

from __future__ import annotations

import threading

import pytest

from rfai_cli.config import load_config
from rfai_cli.errors import RfaiError
from rfai_cli.teachers import JudgeItem, build_teacher

pytestmark = pytest.mark.slow


def _teacher(model_dir, cache_dir, **settings):
    overrides = {
        "teacher.provider": "mlx",
        "teacher.model_name": str(model_dir),
        "teacher.cache_dir": str(cache_dir),
        "teacher.max_tokens": 16,
        "teacher.max_concurrency": 2,
        **{f"teacher.{key}": value for key, value in settings.items()},
    }
    return build_teacher(load_config(None, overrides))


def test_mlx_teacher_answers_in_batches_and_a_rerun_never_loads_the_model(tiny_model_dir, tmp_path):
    tasks = [("Add two numbers.", "python"), ("Reverse a string.", "rust"), ("Sum a list.", "cpp")]
    teacher = _teacher(tiny_model_dir, tmp_path)
    assert teacher.model == str(tiny_model_dir)
    answers = teacher.references(tasks)  # three sequences, in batches of two
    assert [a.source for a in answers] == ["teacher"] * 3 and all(a.ok for a in answers)
    [verdict] = teacher.judge_many([JudgeItem("Add two numbers.", "def add(a, b): return a + b", "python")])
    assert verdict.source == "fallback" and verdict.fallback.startswith("unparsable judge answer, twice")

    again = _teacher(tiny_model_dir, tmp_path)
    cached = again.references(tasks)
    assert [a.text for a in cached] == [a.text for a in answers] and {a.source for a in cached} == {"cache"}
    assert again.judge_many([JudgeItem("Add two numbers.", "def add(a, b): return a + b", "python")]) == [verdict]
    assert again.backend._loaded is None  # everything came from the cache: the model was never loaded


def test_greedy_answers_do_not_depend_on_the_batch(tiny_model_dir, tmp_path):
    tasks = [("Add two numbers.", "python"), ("Reverse a string.", "rust"), ("Sum a list.", "cpp")]
    batched = _teacher(tiny_model_dir, tmp_path / "a", max_concurrency=3).references(tasks)
    single = _teacher(tiny_model_dir, tmp_path / "b", max_concurrency=1).references(tasks)
    assert [a.text for a in batched] == [a.text for a in single]


def test_mlx_teacher_defaults_to_the_students_base_model(tiny_model_dir, tmp_path):
    config = load_config(None, {"model.base_model": str(tiny_model_dir), "teacher.cache_dir": str(tmp_path)})
    teacher = build_teacher(config)
    assert teacher.model == str(tiny_model_dir) and teacher.backend.base_model == str(tiny_model_dir)


def test_concurrent_judge_calls_are_coalesced_into_batches(tiny_model_dir, tmp_path):
    """The scorer calls `judge` from several threads: queued calls share the next batch."""
    items = [JudgeItem(f"Task {i}.", f"x = {i}", "python") for i in range(6)]
    alone = _teacher(tiny_model_dir, tmp_path / "alone", max_concurrency=6)
    expected = [alone.judge(item.prompt, item.code, item.language) for item in items]
    assert alone.backend.batches_decoded == 12  # one at a time: first try and retry for each

    shared = _teacher(tiny_model_dir, tmp_path / "shared", max_concurrency=6)
    results = [None] * len(items)
    start = threading.Barrier(len(items))

    def call(index):
        start.wait()
        results[index] = shared.judge(items[index].prompt, items[index].code, items[index].language)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(items))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == expected
    assert shared.backend.batches_decoded < 12


def test_a_model_that_does_not_load_fails_every_waiting_call(tmp_path):
    teacher = _teacher(tmp_path / "no-such-model", tmp_path / "cache")
    with pytest.raises(RfaiError, match="no-such-model"):
        teacher.reference("Task", "python")
