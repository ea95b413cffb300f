"""The anthropic provider against a local server that speaks the Messages API."""

from __future__ import annotations

import threading
import time

import pytest
from support.messages_server import SOLUTION, VERDICT, MessagesServer

from rfai_cli.config import TeacherSettings, load_config
from rfai_cli.scoring import ScoreItem, Scorer
from rfai_cli.teachers import JudgeItem, TeacherError, build_teacher

KEY = "sk-test-not-a-real-key-1234"


@pytest.fixture
def server():
    server = MessagesServer()
    yield server
    server.close()


@pytest.fixture
def make_teacher(server, tmp_path, monkeypatch):
    monkeypatch.setenv("RFAI_TEST_ANTHROPIC_KEY", KEY)

    def make(**settings):
        overrides = {
            "teacher.provider": "anthropic",
            "teacher.model_name": "claude-test",
            "teacher.base_url": server.url,
            "teacher.api_key_env": "RFAI_TEST_ANTHROPIC_KEY",
            "teacher.cache_dir": str(tmp_path / "cache"),
            "teacher.retry_backoff": 0.01,
            **{f"teacher.{key}": value for key, value in settings.items()},
        }
        return build_teacher(load_config(None, overrides))

    return make


def test_reference_request_shape_and_answer(server, make_teacher):
    teacher = make_teacher()
    answer = teacher.reference("Add two numbers.", "python")
    assert answer.ok and answer.source == "teacher"
    assert answer.text == SOLUTION
    assert "def add(a, b):" in answer.code and "```" not in answer.code
    [body], [headers] = server.requests, server.headers
    assert headers["x-api-key"] == KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert body["model"] == "claude-test" and body["temperature"] == 0.0
    assert body["max_tokens"] == TeacherSettings().max_tokens
    assert "system" in body and all(m["role"] != "system" for m in body["messages"])
    assert "Add two numbers." in body["messages"][0]["content"] and "python" in body["messages"][0]["content"]


def test_a_rerun_is_served_from_the_disk_cache_without_any_request(server, make_teacher, tmp_path):
    tasks = [(f"Task {i}", "python") for i in range(5)]
    items = [JudgeItem(f"Task {i}", "def f():\n    pass\n", "python") for i in range(5)]
    first = make_teacher()
    assert all(a.source == "teacher" for a in first.references(tasks))
    assert all(v.source == "judge" for v in first.judge_many(items))
    assert server.count == 10
    first.close()

    again = make_teacher()  # a new process would build a new teacher just like this
    answers = again.references(tasks)
    verdicts = again.judge_many(items)
    assert server.count == 10
    assert [a.source for a in answers] == ["cache"] * 5 and answers[0].text == SOLUTION
    assert [v.source for v in verdicts] == ["cache"] * 5 and verdicts[0].scores == VERDICT
    # The key is sent, never stored.
    stored = "".join(p.read_text() for p in (tmp_path / "cache").rglob("*.json"))
    assert stored and KEY not in stored


def test_the_cache_key_covers_model_and_parameters(server, make_teacher):
    make_teacher().reference("Task", "python")
    make_teacher(model_name="claude-other").reference("Task", "python")
    make_teacher(max_tokens=77).reference("Task", "python")
    make_teacher().reference("Task", "rust")
    assert server.count == 4
    make_teacher(max_tokens=77).reference("Task", "python")
    assert server.count == 4


def test_429_then_success_is_one_answer_after_one_retry(server, make_teacher):
    server.script(429)
    started = time.monotonic()
    answer = make_teacher(max_retries=3).reference("Task", "python")
    assert answer.ok and answer.text == SOLUTION
    assert server.count == 2
    assert time.monotonic() - started < 2


def test_500_forever_gives_up_after_max_retries_quickly(server, make_teacher):
    server.script(("forever", 500))
    started = time.monotonic()
    teacher = make_teacher(max_retries=2)
    answer = teacher.reference("Task", "python")
    assert server.count == 3  # the first try and two retries
    assert not answer.ok and answer.source == "fallback" and answer.code == ""
    assert "HTTP 500" in answer.error and "gave up after 3 attempts" in answer.error
    assert "\n" not in answer.error and KEY not in answer.error
    verdict = teacher.judge("Task", "pass", "python")
    assert verdict.source == "fallback" and verdict.scores == {} and "HTTP 500" in verdict.fallback
    assert server.count == 6
    assert time.monotonic() - started < 3
    # Nothing was cached, so the next run asks again.
    server.clear()
    assert make_teacher().reference("Task", "python").source == "teacher"


def test_a_client_error_is_not_retried(server, make_teacher):
    server.script(400)
    answer = make_teacher(max_retries=3).reference("Task", "python")
    assert server.count == 1 and "HTTP 400" in answer.error and "scripted 400" in answer.error


def test_judge_parses_json_inside_a_fence(server, make_teacher):
    server.script(
        'Sure.\n```json\n{"correctness": 1, "code_quality": 0.5, "efficiency": 0.25, "documentation": 0}\n```'
    )
    verdict = make_teacher().judge("Task", "def f(): pass", "python")
    assert verdict.source == "judge"
    assert verdict.scores == {"correctness": 1.0, "code_quality": 0.5, "efficiency": 0.25, "documentation": 0.0}
    prompt = server.requests[0]["messages"][0]["content"]
    assert "def f(): pass" in prompt and '"correctness": x' in prompt


def test_an_unparsable_verdict_is_retried_once_with_the_problem_named(server, make_teacher):
    server.script('{"correctness": 1.5, "code_quality": 0.5, "efficiency": 0.5, "documentation": 0.5}')
    verdict = make_teacher().judge("Task", "code", "python")
    assert verdict.source == "judge" and verdict.scores == VERDICT
    assert server.count == 2
    retry = server.requests[1]["messages"]
    assert retry[1]["role"] == "assistant" and "outside 0..1" in retry[2]["content"]


def test_two_unparsable_verdicts_are_a_fallback_never_a_made_up_score(server, make_teacher):
    server.script("I think it is pretty good!", '{"correctness": 0.5}')
    verdict = make_teacher().judge("Task", "code", "python")
    assert verdict.source == "fallback" and verdict.scores == {}
    assert "missing key 'code_quality'" in verdict.fallback
    assert server.count == 2


def test_requests_run_concurrently_but_never_above_max_concurrency(make_teacher):
    slow = MessagesServer(delay=0.2)
    try:
        teacher = make_teacher(base_url=slow.url, max_concurrency=3)
        started = time.monotonic()
        answers = teacher.references([(f"Task {i}", "python") for i in range(9)])
        elapsed = time.monotonic() - started
        assert all(a.ok for a in answers) and slow.count == 9
        assert slow.max_in_flight == 3
        assert elapsed < 9 * 0.2 * 0.75  # three at a time, not one by one
    finally:
        slow.close()


def test_the_bound_holds_across_callers(make_teacher):
    """Several threads using one teacher (the scorer's pool does) share its max_concurrency."""
    slow = MessagesServer(delay=0.1)
    try:
        teacher = make_teacher(base_url=slow.url, max_concurrency=2)
        callers = [
            threading.Thread(target=teacher.references, args=([(f"Caller {c} task {i}", "python") for i in range(4)],))
            for c in range(3)
        ]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join()
        assert slow.count == 12 and slow.max_in_flight == 2
    finally:
        slow.close()


def test_the_teacher_is_the_scorers_judge(server, make_teacher):
    """A task without tests: correctness comes from the teacher's verdict, quality and docs blend it."""
    teacher = make_teacher()
    row = {"prompt": "Add two numbers.", "language": "python"}
    code = 'def add(a, b):\n    """Sum."""\n    return a + b\n'
    with Scorer(load_config(None).scoring, judge=teacher) as scorer:
        [result] = scorer.score_many([ScoreItem(row, [code], code)])
    student = result.students[0]
    assert student.breakdown["correctness"] == VERDICT["correctness"]
    assert student.sources["correctness"] == "judge"
    assert student.sources["code_quality"].endswith("+judge") and student.sources["documentation"].endswith("+judge")
    assert server.count == 1  # the scorer evaluates identical code once


def test_identical_requests_in_one_batch_are_sent_once(server, make_teacher):
    answers = make_teacher().references([("Same", "python")] * 4)
    assert server.count == 1 and len(answers) == 4 and all(a.ok for a in answers)


def test_a_missing_api_key_is_a_one_line_error_before_any_request(server, make_teacher, monkeypatch):
    monkeypatch.delenv("RFAI_TEST_ANTHROPIC_KEY")
    with pytest.raises(TeacherError) as caught:
        make_teacher()
    message = str(caught.value)
    assert "RFAI_TEST_ANTHROPIC_KEY" in message and "\n" not in message
    assert server.count == 0


def test_anthropic_key_variable_defaults_to_anthropic_api_key(server, tmp_path, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    config = load_config(
        None, {"teacher.provider": "anthropic", "teacher.model_name": "m", "teacher.cache_dir": str(tmp_path)}
    )
    with pytest.raises(TeacherError, match="ANTHROPIC_API_KEY"):
        build_teacher(config)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    config.teacher.base_url = server.url
    assert build_teacher(config).reference("Task", "python").ok
    assert server.headers[0]["x-api-key"] == KEY
