"""Teaching by a task's own reference solution, and refusing degenerate model references."""

from __future__ import annotations

import json

import pytest
from support.messages_server import SOLUTION, MessagesServer

from rfai_cli.config import load_config
from rfai_cli.data.prompts import load_prompts
from rfai_cli.errors import ConfigError
from rfai_cli.teachers import build_teacher
from rfai_cli.teachers.build import weak_teacher_notice
from rfai_cli.teachers.degenerate import degenerate_reason

KNOWN = "def add(a, b):\n    return a + b\n"
LOOP = "Here is the code:\n```python\ndef add(a, b):\n    return a + b\n" + "    # add a and b\n" * 80


@pytest.fixture
def server():
    server = MessagesServer()
    yield server
    server.close()


def anthropic_teacher(server, tmp_path, monkeypatch, **settings):
    monkeypatch.setenv("RFAI_TEST_KEY", "sk-test-key")
    overrides = {
        "teacher.provider": "anthropic",
        "teacher.model_name": "claude-test",
        "teacher.base_url": server.url,
        "teacher.api_key_env": "RFAI_TEST_KEY",
        "teacher.cache_dir": str(tmp_path / "cache"),
        "teacher.retry_backoff": 0.01,
        **settings,
    }
    return build_teacher(load_config(None, overrides))


def test_reference_provider_teaches_by_known_solutions_and_never_asks_a_model(tmp_path):
    teacher = build_teacher(load_config(None, {"teacher.provider": "reference", "teacher.cache_dir": str(tmp_path)}))
    known, unknown = teacher.references([("Add.", "python", KNOWN), ("Subtract.", "python", None)])
    assert known.ok and known.code == KNOWN and known.source == "reference" and known.model == "reference"
    assert not unknown.ok and unknown.code == "" and "no reference solution" in unknown.error
    assert teacher.model == "reference"


def test_reference_provider_cannot_judge():
    with pytest.raises(ConfigError, match="teacher.judge"):
        build_teacher(load_config(None, {"teacher.provider": "reference", "teacher.judge": True}))


def test_a_model_provider_ignores_known_solutions(server, tmp_path, monkeypatch):
    teacher = anthropic_teacher(server, tmp_path, monkeypatch)
    (answer,) = teacher.references([("Add.", "python", KNOWN)])
    assert answer.source == "teacher" and answer.text == SOLUTION and server.count == 1


def test_auto_uses_the_known_solution_and_the_model_for_the_rest(tmp_path, tiny_model_dir):
    config = load_config(
        None, {"model.base_model": str(tiny_model_dir), "teacher.max_tokens": 8, "teacher.cache_dir": str(tmp_path)}
    )
    assert config.teacher.provider == "auto"
    with build_teacher(config) as teacher:
        known, asked = teacher.references([("Add.", "python", KNOWN), ("Subtract.", "python")])
    assert known.source == "reference" and known.code == KNOWN
    assert asked.model == str(tiny_model_dir) and asked.source in ("teacher", "fallback")
    assert asked.source == "teacher" or asked.error.startswith("degenerate answer")


def test_degenerate_model_answers_are_recorded_not_used(server, tmp_path, monkeypatch):
    cut_off = "```python\ndef add(a, b):\n    return a +"
    server.script(LOOP, cut_off, SOLUTION)
    teacher = anthropic_teacher(server, tmp_path, monkeypatch, **{"teacher.max_concurrency": 1})
    looping, truncated, fine = teacher.references([("Add.", "python"), ("Add 2.", "python"), ("Add 3.", "python")])
    assert looping.code == "" and looping.source == "fallback" and "repetition loop" in looping.error
    assert looping.text == LOOP  # kept, for a person to look at
    assert truncated.code == "" and "cut off" in truncated.error
    assert fine.ok and "def add" in fine.code


def test_real_reference_solutions_are_never_taken_for_degenerate():
    for task in load_prompts("builtin") + load_prompts("humaneval"):
        answer = f"Here is a solution:\n```{task.language}\n{task.canonical_solution}```\n"
        assert degenerate_reason(answer) is None, task.task_id


def test_weak_teacher_notice_only_when_the_embedded_model_writes_references(tmp_path):
    tasks = load_prompts("builtin", "train", limit=3)
    config = load_config(None, {"teacher.cache_dir": str(tmp_path)})
    teacher = build_teacher(config)  # auto with the embedded model: loaded only when asked
    assert weak_teacher_notice(teacher, tasks) is None  # every built-in task has its own solution
    bare = [type(task)(task.prompt, task.language, task.task_id) for task in tasks]
    notice = weak_teacher_notice(teacher, bare)
    assert "embedded SmolLM2-135M-Instruct" in notice and "3 of 3" in notice and "teacher.provider" in notice


def test_prompt_files_may_name_the_solution_solution_or_reference(tmp_path):
    path = tmp_path / "prompts.jsonl"
    rows = [
        {"prompt": "a", "canonical_solution": "x = 1\n"},
        {"prompt": "b", "solution": "x = 2\n"},
        {"prompt": "c", "reference": "x = 3\n"},
        {"prompt": "d"},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert [task.canonical_solution for task in load_prompts(path)] == ["x = 1\n", "x = 2\n", "x = 3\n", None]
